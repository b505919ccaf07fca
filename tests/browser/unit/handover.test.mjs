// Unit tests of static/client.js: the hello and the handover on a goaway notice (issue 13).
// Run: node --test tests/browser/unit/*.test.mjs (every file), or name one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAlive, reverseText } from '../../../static/protocol.js';
import { setup, scripted, alive, hello, goaway, handoverSetup, movedWithOneOwed } from './fakes.mjs';

// --- hello and the handover (goaway notice) ------------------------------------------------------------

test('parseAlive reads a hello and a goaway notice; a plain alive has no event', () => {
  assert.deepEqual(parseAlive(hello('pod-a', 5000, 3000)), {
    instance: 'pod-a',
    phase: 'serving',
    intervalMs: 5000,
    uptimeMs: 7,
    event: 'hello',
    handoverMs: 3000,
  });
  assert.deepEqual(parseAlive(goaway('pod-a', 5000, 2500)), {
    instance: 'pod-a',
    phase: 'draining',
    intervalMs: 5000,
    uptimeMs: 9,
    event: 'goaway',
    closeInMs: 2500,
  });
  assert.equal(parseAlive(alive('pod-a')).event, null);
  assert.equal(parseAlive(hello('pod-a', 5000, 0)).handoverMs, 0, 'a server without notices');
});

test('hello: the instance is known at once, before any alive message', () => {
  const { client, last, of } = setup();
  client.start();
  last().open();
  assert.equal(client.instance, null);
  last().receive(hello('pod-a', 1000, 5000));
  assert.equal(client.instance, 'pod-a', 'set by the hello itself');
  assert.deepEqual(
    of('hello').map(({ instance, phase, intervalMs, handoverMs, connection }) => ({ instance, phase, intervalMs, handoverMs, connection })),
    [{ instance: 'pod-a', phase: 'serving', intervalMs: 1000, handoverMs: 5000, connection: 1 }],
  );
  // The page renders alive events: the hello is one (it is an alive message), the first.
  assert.deepEqual(of('alive').map((a) => [a.instance, a.event, a.first]), [['pod-a', 'hello', true]]);
  client.send('x');
  last().answerAll();
  assert.equal(of('reply')[0].instance, 'pod-a', 'a reply before any plain alive names its instance');
});

test('hello: its interval_ms watches the link at once', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  last().receive(hello('pod-a', 1000));
  clock.advance(1_999);
  assert.equal(of('dead').length, 0);
  clock.advance(1);
  assert.equal(of('dead').length, 1, '2 x 1 s, not 2 x the default 5 s');
});

test('handover, happy path: old replies delivered, new messages on the new socket, old closed 1000, nothing re-sent', () => {
  const { client, sockets, live, states, of } = handoverSetup();
  const a = sockets[0];
  const m1 = client.send('eins');
  const m2 = client.send('zwei');
  assert.deepEqual(a.sent, ['eins', 'zwei']);

  a.receive(goaway('pod-a', 1000, 5000));
  assert.equal(sockets.length, 2, 'the notice opens a second socket');
  const b = sockets[1];
  assert.equal(b.url, a.url, 'through the same URL');
  assert.deepEqual(of('handover').map((h) => [h.phase, h.from, h.fromConnection, h.connection]), [['started', 'pod-a', 1, 2]]);
  assert.equal(client.state, 'open');
  const m3 = client.send('drei'); // typed before the new socket is open: still on the old one
  assert.deepEqual(a.sent, ['eins', 'zwei', 'drei']);

  b.open();
  assert.deepEqual(of('handover').at(-1), { type: 'handover', phase: 'moved', from: 'pod-a', fromConnection: 1, to: null, connection: 2, reason: '' });
  assert.equal(client.instance, null, 'the old socket\'s instance is no longer shown');
  b.receive(hello('pod-b'));
  assert.equal(client.instance, 'pod-b', 'the new socket\'s hello names it at once');
  const m4 = client.send('vier');
  assert.deepEqual(b.sent, ['vier'], 'new messages go on the new socket');
  assert.deepEqual(a.sent, ['eins', 'zwei', 'drei'], 'and nothing more on the old one');

  // The old socket goes on answering what it carries; its alive messages are not shown any more.
  a.receive(reverseText('eins'));
  a.receive(alive('pod-a', 1000, 'draining'));
  a.receive(reverseText('zwei'));
  assert.equal(a.closedWith, null, 'not closed while a reply is still due on it');
  assert.equal(client.instance, 'pod-b');
  assert.ok(of('alive').every((e) => e.phase !== 'draining' || e.event === 'goaway'), 'the old one\'s alive is not rendered');
  a.receive(reverseText('drei'));
  assert.deepEqual(a.closedWith, { code: 1000, reason: 'handed over' }, 'closed once nothing is in flight on it');
  b.receive(reverseText('vier'));

  const replies = of('reply');
  assert.deepEqual(replies.map((r) => [r.message.seq, r.reply, r.instance, r.connection]), [
    [m1.seq, 'snie', 'pod-a', 1],
    [m2.seq, 'iewz', 'pod-a', 1],
    [m3.seq, 'ierd', 'pod-a', 1],
    [m4.seq, 'reiv', 'pod-b', 2],
  ]);
  assert.deepEqual([m1, m2, m3, m4].map((m) => m.sends), [1, 1, 1, 1], 'nothing sent twice');
  assert.equal(of('requeued').length, 0);
  assert.deepEqual(states(), ['connecting', 'open'], 'no state but open during the handover');
  assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved']);
  assert.deepEqual(live(), [b]);
  assert.equal(client.pending.length, 0);
  assert.deepEqual(of('alive').at(-1).instance, 'pod-b');
  assert.deepEqual(client.lastAlive.instance, 'pod-b');
});

test('handover: with nothing in flight on the old socket, it is closed as soon as the new one opens', () => {
  const { client, sockets, live, states } = handoverSetup();
  client.send('a');
  sockets[0].answerAll();
  sockets[0].receive(goaway('pod-a'));
  assert.equal(sockets[0].closedWith, null, 'kept until the new one is open');
  sockets[1].open();
  assert.deepEqual(sockets[0].closedWith, { code: 1000, reason: 'handed over' });
  assert.deepEqual(live(), [sockets[1]]);
  assert.deepEqual(states(), ['connecting', 'open']);
});

for (const how of ['error and close before open', 'connect timeout']) {
  test(`handover, the new socket fails (${how}): the old one serves on, then today's 1012 path`, () => {
    const { clock, client, sockets, live, states, of } = handoverSetup({ connectTimeoutMs: 4_000 });
    const a = sockets[0];
    client.send('eins');
    a.receive(goaway('pod-a', 1000, 5000));
    const b = sockets[1];
    if (how === 'connect timeout') {
      for (let i = 0; i < 4; i++) {
        assert.equal(b.closedWith, null);
        clock.advance(1_000);
        a.receive(alive('pod-a', 1000, 'draining'));
      }
      assert.deepEqual(b.closedWith, { code: 4002, reason: 'connect timeout' });
    } else {
      b.serverClose(1006);
    }
    assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'failed']);
    assert.equal(of('handover').at(-1).connection, 2);
    assert.equal(client.state, 'open', 'the old socket still serves');
    assert.deepEqual(live(), [a]);
    client.send('zwei');
    assert.deepEqual(a.sent, ['eins', 'zwei'], 'messages keep going on the old socket');
    a.receive(reverseText('eins'));
    a.receive(goaway('pod-a')); // the server repeating itself: no second attempt
    assert.equal(sockets.length, 2);
    // The old socket's close: the restart delay, reconnect, re-send what it left unanswered.
    a.serverClose(1012, 'server restarting; reconnect');
    assert.equal(client.state, 'restarting');
    assert.deepEqual(of('requeued').at(-1).messages.map((m) => m.text), ['zwei']);
    clock.advance(of('state').at(-1).delayMs);
    assert.equal(sockets.length, 3);
    sockets[2].open();
    assert.deepEqual(sockets[2].sent, ['zwei']);
    assert.deepEqual(states(), ['connecting', 'open', 'restarting', 'connecting', 'open']);
  });
}

test('handover, the old socket closes first: only its unanswered messages are re-sent, once, in order', () => {
  const { client, sockets, live, states, of } = handoverSetup();
  const a = sockets[0];
  for (const text of ['m1', 'm2', 'm3']) client.send(text);
  a.receive(goaway('pod-a'));
  const b = sockets[1];
  b.open();
  b.receive(hello('pod-b'));
  client.send('m4');
  assert.deepEqual(b.sent, ['m4']);
  a.receive(reverseText('m1'));
  a.serverClose(1012, 'server restarting; reconnect'); // close_in_ms passed before m2, m3 were answered
  assert.deepEqual(of('requeued').map((r) => r.messages.map((m) => m.text)), [['m2', 'm3']]);
  assert.deepEqual(b.sent, ['m4', 'm2', 'm3'], 'm2 and m3 (not m1) go out again, in order');
  b.answerAll();
  const replies = of('reply');
  assert.deepEqual(replies.map((r) => [r.message.text, r.instance]), [['m1', 'pod-a'], ['m4', 'pod-b'], ['m2', 'pod-b'], ['m3', 'pod-b']]);
  assert.deepEqual(Object.fromEntries(replies.map((r) => [r.message.text, r.message.sends])), { m1: 1, m2: 2, m3: 2, m4: 1 });
  assert.equal(new Set(replies.map((r) => r.message.seq)).size, 4, 'each answered once');
  assert.deepEqual(states(), ['connecting', 'open']);
  assert.deepEqual(live(), [b]);
  assert.equal(client.pending.length, 0);
  // A late reply on the old socket (it is gone) is not taken.
  a.receive(reverseText('m2'));
  assert.equal(of('reply').length, 4);
});

test('handover, the old socket closes before the new one opened: its unanswered wait for the new one', () => {
  const { client, sockets, live, states, of } = handoverSetup();
  const a = sockets[0];
  client.send('m1');
  client.send('m2');
  a.receive(goaway('pod-a'));
  a.receive(reverseText('m1'));
  a.serverClose(1012, 'server restarting; reconnect');
  assert.equal(client.state, 'connecting', 'no socket open: connecting, no restart delay');
  client.send('m3');
  assert.deepEqual(client.pending.map((m) => m.text), ['m2', 'm3']);
  const b = sockets[1];
  b.open();
  assert.deepEqual(b.sent, ['m2', 'm3'], 'in order, on the new socket, once open');
  assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved']);
  b.answerAll();
  assert.deepEqual(of('reply').map((r) => r.message.text), ['m1', 'm2', 'm3']);
  assert.deepEqual(states(), ['connecting', 'open', 'connecting', 'open']);
  assert.ok(!states().includes('restarting') && !states().includes('reconnecting'));
  assert.deepEqual(live(), [b]);
});

test('handover, the old socket closed and then the new one fails: the reconnect follows the old 1012', () => {
  const { clock, client, sockets, states, of } = handoverSetup({ random: scripted([0]) });
  client.send('m1');
  sockets[0].receive(goaway('pod-a'));
  sockets[0].serverClose(1012, 'server restarting; reconnect');
  sockets[1].serverClose(1006);
  assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'failed']);
  const state = of('state').at(-1);
  assert.deepEqual([state.state, state.code, state.delayMs], ['restarting', 1012, 200]);
  clock.advance(200);
  sockets[2].open();
  assert.deepEqual(sockets[2].sent, ['m1']);
  assert.deepEqual(states(), ['connecting', 'open', 'connecting', 'restarting', 'connecting', 'open']);
});

test('handover: a second notice on the same socket is ignored', () => {
  const { client, sockets, of } = handoverSetup();
  sockets[0].receive(goaway('pod-a'));
  sockets[0].receive(goaway('pod-a'));
  assert.equal(sockets.length, 2);
  sockets[1].open();
  client.send('x');
  sockets[0].receive(goaway('pod-a')); // and after the move (the old one is closed by now)
  assert.equal(sockets.length, 2);
  assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved']);
  assert.deepEqual(sockets[1].sent, ['x']);
});

test('handover: a notice on a socket being given up is ignored', () => {
  const { clock, client, sockets, live, of } = handoverSetup();
  const a = sockets[0];
  client.send('m1');
  a.receive(goaway('pod-a'));
  sockets[1].open();
  // `a` is being given up (it still owes m1's reply): a notice on it starts nothing.
  a.receive(goaway('pod-a', 1000, 100));
  assert.equal(sockets.length, 2);
  assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved']);
  a.receive(reverseText('m1'));
  assert.ok(a.closedWith);
  // A socket given up as dead (no alive in time) neither.
  clock.advance(2_000);
  assert.equal(of('dead').length, 1);
  sockets[1].receive(goaway('pod-b'));
  assert.equal(sockets.length, 2, 'the dead socket\'s notice is not heard');
  assert.equal(client.state, 'reconnecting');
  assert.deepEqual(live(), []);
});

test('handover: a notice on the new socket while the old one finishes: next handover once the old one is gone', () => {
  const { client, sockets, live, states, of, serve } = handoverSetup();
  serve(5_000); // `a` lived past quickEndMs: moving off it is no quick move
  const { a, b } = movedWithOneOwed({ client, sockets });
  client.send('m2');
  b.receive(goaway('pod-b')); // pod-b is going away too, while `a` still owes m1's reply
  assert.equal(sockets.length, 2, 'never a third socket while two are open');
  assert.equal(live().length, 2);
  b.receive(reverseText('m2'));
  a.receive(reverseText('m1')); // `a` is done: closed, and the waiting handover starts
  assert.ok(a.closedWith);
  assert.equal(sockets.length, 3);
  assert.deepEqual(live(), [b, sockets[2]]);
  assert.deepEqual(of('handover').map((h) => [h.phase, h.from]), [['started', 'pod-a'], ['moved', 'pod-a'], ['started', 'pod-b']]);
  sockets[2].open();
  sockets[2].receive(hello('pod-c'));
  assert.ok(b.closedWith, 'nothing in flight on b: closed at once');
  assert.equal(client.instance, 'pod-c');
  client.send('m3');
  assert.deepEqual(sockets[2].sent, ['m3']);
  assert.deepEqual(states(), ['connecting', 'open']);
});

test('handover: the old socket going silent is given up like a close; its messages go out again', () => {
  const { clock, client, sockets, states, of } = handoverSetup();
  const { a, b } = movedWithOneOwed({ client, sockets });
  for (let i = 0; i < 3; i++) {
    clock.advance(1_000);
    b.receive(alive('pod-b'));
  }
  assert.deepEqual(a.closedWith, { code: 4000, reason: 'no alive message' });
  assert.deepEqual(b.sent, ['m1']);
  b.answerAll();
  assert.deepEqual(of('reply').map((r) => [r.message.text, r.instance]), [['m1', 'pod-b']]);
  assert.equal(of('dead').length, 0, 'the current link is fine');
  assert.deepEqual(states(), ['connecting', 'open']);
});

test('a reply that looks like a hello or a goaway notice is still the head\'s reply', () => {
  const { client, sockets, last, of } = setup();
  client.start();
  last().open();
  client.send(reverseText(hello('evil')));
  client.send(reverseText(goaway('evil')));
  last().answerAll();
  assert.deepEqual(of('reply').map((r) => r.reply), [hello('evil'), goaway('evil')]);
  assert.equal(of('hello').length, 0);
  assert.equal(of('handover').length, 0);
  assert.equal(sockets.length, 1, 'no handover started');
  assert.equal(client.instance, null);
});

test('a notice while a socket is not yet open or the client stopped starts nothing', () => {
  const { client, sockets, of } = handoverSetup();
  client.stop('user');
  sockets[0].receive(goaway('pod-a'));
  assert.equal(sockets.length, 1);
  assert.equal(of('handover').length, 0);
});

