// Unit tests of static/client.js: the limits it keeps against a server (or a load balancer) that
// misbehaves, or is only set differently: a message the server refuses, notices or restarts on
// every new socket, an absurd interval_ms, a close reason too long for a close frame.
// Run: node --test tests/browser/unit/*.test.mjs (every file), or name one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WsClient } from '../../../static/client.js';
import { parseAlive } from '../../../static/protocol.js';
import { setup, alive, hello, goaway, handoverSetup, fakeWebSocketClass, movedWithOneOwed } from './fakes.mjs';

test('a message the server refuses (1009) is dropped with a "rejected" event; the rest go on', () => {
  // The server's MAX_MESSAGE_SIZE may be below the page's 64 KiB: the server closes with 1009 on
  // the first message in flight. Sent again, it would close every new socket the same way.
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  client.send('fits');
  last().answerAll();
  const big = client.send('too big for this server');
  client.send('after');
  last().serverClose(1009, 'message too big');
  assert.deepEqual(
    of('rejected').map((r) => [r.text, r.message?.seq, r.reason]),
    [['too big for this server', big.seq, 'the server refused it (close 1009: message too big)']],
  );
  assert.deepEqual(client.pending.map((m) => m.text), ['after']);
  clock.advance(of('state').at(-1).delayMs);
  last().open();
  assert.deepEqual(last().sent, ['after'], 'only the rest is sent again');
  last().answerAll();
  assert.deepEqual(client.pending, []);
});

test('a goaway on every new socket: the moves back off instead of churning sockets', () => {
  // Each new socket gets a notice right after its hello (a foreign server, a tiny
  // MAX_CONNECTION_AGE, a load balancer that keeps picking draining pods). Without a limit the
  // client opened a new socket per handshake: over a thousand in no time at all.
  const { clock, client, sockets, last } = handoverSetup();
  sockets[0].receive(goaway('pod-a'));
  for (let ms = 0; ms < 60_000; ms += 100) {
    const sock = last();
    if (sock.readyState === 0) {
      sock.open();
      sock.receive(hello(`pod-${sockets.length}`));
      sock.receive(goaway(`pod-${sockets.length}`));
    }
    clock.advance(100);
    last().receive(alive(`pod-${sockets.length}`)); // the current socket's server is alive
  }
  // With the random source at 0.5: moves at once, then after 0.5, 1, 2, 4, 8, 15, 15 … s.
  assert.ok(sockets.length >= 6 && sockets.length <= 12, `${sockets.length} sockets in 60 s`);
  assert.equal(client.state, 'open');
});

test('1012 right after every open: the restart delay grows into the backoff', () => {
  // A server that takes the handshake and closes with 1012 each time (crash-looping behind a
  // proxy that answers the upgrade) was retried every 0.2-3 s forever.
  const { clock, client, last, of } = setup();
  client.start();
  const delays = [];
  for (let i = 0; i < 10; i++) {
    last().open();
    last().serverClose(1012);
    const state = of('state').at(-1);
    assert.equal(state.state, 'restarting');
    delays.push(Math.round(state.delayMs));
    clock.advance(state.delayMs);
  }
  // random 0.5: the restart delay 1.6 s, then at least 0.5 x min(30 s, 0.5 s x 2^attempt).
  assert.deepEqual(delays, [1600, 1600, 1600, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
  // A socket that lived past quickEndMs (5 s) before its 1012 (a rollout moving the client from
  // pod to pod) gets the short delay, however many came before.
  last().open();
  for (let t = 0; t < 5; t++) {
    clock.advance(1_000);
    last().receive(alive('pod-a'));
  }
  last().serverClose(1012);
  assert.equal(Math.round(of('state').at(-1).delayMs), 1600);
});

test('interval_ms is held to [100 ms, 1 day]: no instant verdicts, no timer overflow', () => {
  assert.equal(parseAlive(alive('pod-a', 1)).intervalMs, 100);
  assert.equal(parseAlive(alive('pod-a', 2 ** 40)).intervalMs, 86_400_000);
  assert.equal(parseAlive(alive('pod-a', 0)).intervalMs, 0);
  // A watchdog timer over 2^31 - 1 ms fires at once in a browser, and re-arms, and again.
  const { clock, client, last } = setup({ deadFactor: 100 });
  client.start();
  last().open();
  last().receive(alive('pod-a', 2 ** 40));
  assert.ok(Math.max(...clock.pendingDelays()) <= 2 ** 31 - 1, `${clock.pendingDelays()}`);
  assert.equal(client.state, 'open');
});

test('stop() says why in its state event; a reason too long for a close frame is cut, not thrown', () => {
  const { client, last, of } = setup();
  client.start();
  last().open();
  client.stop('user pressed stop');
  assert.deepEqual([of('state').at(-1).state, of('state').at(-1).reason], ['stopped', 'user pressed stop']);
  client.start();
  last().open();
  const long = 'é'.repeat(100); // 200 bytes of UTF-8
  client.stop(long);
  assert.equal(last().readyState, 3, 'closed, not left open with its handlers gone');
  assert.equal(last().closedWith.reason, 'é'.repeat(61), '122 bytes: the most whole characters in 123');
  assert.equal(client.closeReason, long);
});

test('offline is a hint: retryNow() tries anyway, and back to offline if it fails', () => {
  const { client, sockets, last, states } = setup({ online: false });
  client.start();
  assert.equal(client.state, 'offline');
  assert.equal(sockets.length, 0);
  client.retryNow(); // a server on this machine needs no network
  last().open();
  assert.equal(client.state, 'open');
  client.stop();
  client.start();
  client.retryNow();
  last().serverClose(1006);
  assert.deepEqual(states().slice(-3), ['offline', 'connecting', 'offline']);
});

test('a re-send keeps the order: those owed by a closing socket go before those typed since', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  client.send('a');
  client.send('b');
  last().readyState = 2; // the server's close frame came; the close event has not yet
  client.send('c'); // waits: the socket is closing
  last().serverClose(1006);
  clock.advance(of('state').at(-1).delayMs);
  last().open();
  assert.deepEqual(last().sent, ['a', 'b', 'c']);
});

test('a notice waiting while the old socket finishes goes on when the old one closes (1012)', () => {
  const { client, sockets, of, serve } = handoverSetup();
  serve(5_000);
  const { a, b } = movedWithOneOwed({ client, sockets });
  b.receive(goaway('pod-b')); // waits: `a` still owes m1
  assert.equal(sockets.length, 2);
  a.serverClose(1012); // `a` ends before answering: m1 goes out on b, and the waiting move starts
  assert.deepEqual(b.sent, ['m1']);
  assert.equal(sockets.length, 3);
  assert.deepEqual(of('handover').map((h) => [h.phase, h.from]).at(-1), ['started', 'pod-b']);
});

test('with no clock given, the client never reads the wall clock (a step of it must not matter)', () => {
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const wallClock = Date.now;
  Date.now = () => {
    throw new Error('the wall clock was read');
  };
  try {
    const client = new WsClient({ url: 'ws://example.test/ws', WebSocket: FakeWebSocket });
    client.start();
    sockets[0].open();
    sockets[0].receive(hello('pod-a'));
    client.send('hi');
    sockets[0].answerAll();
    sockets[0].serverClose(1006); // a retry scheduled: retryAt
    assert.ok(client.retryAt > performance.now());
    client.stop(); // every timer cleared
  } finally {
    Date.now = wallClock;
  }
});

test('a notice that is not quick ends a run of quick ones: moves seconds apart are never delayed', () => {
  // Sockets asked to move 1 s and 8 s after their open, in turn: never two quick ends in a row.
  // Had the count kept growing, the delayed move would outlast the server's HANDOVER_TIMEOUT and
  // a seamless move turn into a 1012 and a re-send.
  const { clock, client, sockets, last } = handoverSetup({ random: () => 0.9 });
  for (let i = 0; i < 8; i++) {
    const sock = last();
    const before = sockets.length;
    const ms = i % 2 === 0 ? 1_000 : 8_000;
    for (let t = 0; t < ms; t += 500) {
      clock.advance(500);
      sock.receive(alive(`pod-${before}`));
    }
    sock.receive(goaway(`pod-${before}`));
    assert.equal(sockets.length, before + 1, `move ${i + 1} (notice ${ms} ms after the open) at once`);
    last().open();
    last().receive(hello(`pod-${before + 1}`));
  }
  assert.equal(client.state, 'open');
});

test('a quick notice and then a quick 1012 on one socket count once', () => {
  // The notice 1 s after the open delays the move; the 1012 half a second later comes first. The
  // socket is one quick end, not two: the 1012 waits as its notice would have.
  const { clock, client, last, of } = handoverSetup({ random: () => 0.99 });
  last().serverClose(1012); // a quick end: the count is 1
  clock.advance(of('state').at(-1).delayMs);
  for (let i = 0; i < 4; i++) {
    last().open();
    last().receive(hello('pod-a'));
    const counted = client._policy.quickEnds;
    clock.advance(1_000);
    last().receive(goaway('pod-a'));
    assert.equal(client._policy.quickEnds, counted + 1, 'the notice counted');
    clock.advance(500);
    last().serverClose(1012);
    assert.equal(client._policy.quickEnds, counted + 1, 'its 1012 not again');
    clock.advance(of('state').at(-1).delayMs);
  }
});

test('the stable timer does not undo the count while a move waits out a quick end', () => {
  const { clock, client, last, of, serve } = handoverSetup({ random: () => 0.99 });
  for (let i = 0; i < 6; i++) {
    last().serverClose(1012); // at once: a quick end
    clock.advance(of('state').at(-1).delayMs);
    last().open();
    last().receive(hello('pod-a'));
  }
  assert.equal(client._policy.quickEnds, 6);
  // A quick notice now waits 0.99 x 30 s; the socket's 30 s stable timer fires inside that wait.
  serve(1_000);
  last().receive(goaway('pod-a'));
  const sockets = client.connections;
  serve(29_500);
  assert.equal(client.connections, sockets, 'the move still waits');
  assert.equal(client._policy.quickEnds, 7, 'not reset while the move waits');
});

test('retryNow() while offline: a handshake that hangs goes back to offline, not to a backoff', () => {
  const { clock, client, states } = setup({ online: false });
  client.start();
  client.retryNow();
  clock.advance(10_000); // the connect timeout
  assert.deepEqual(states().slice(-2), ['connecting', 'offline']);
  assert.equal(client.retryAt, null);
  client.setOnline(true);
  assert.equal(client.state, 'connecting', 'online reconnects at once');
});
