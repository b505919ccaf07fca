// Unit tests of static/client.js: the helpers, the reconnect policy (backoff, 1012, 4xxx), the queue
// (re-send, first-in first-out matching, no duplicates) and the browser's own signals.
// Run: node --test tests/browser/unit/*.test.mjs (every file), or name one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, backoffCapMs } from '../../../static/client.js';
import { parseAlive, reverseText, webSocketUrl } from '../../../static/protocol.js';
import { setup, scripted, alive } from './fakes.mjs';

// --- helpers ----------------------------------------------------------------------------------------

test('webSocketUrl derives ws/wss and keeps the path prefix', () => {
  assert.equal(webSocketUrl('http://h:8080/'), 'ws://h:8080/ws');
  assert.equal(webSocketUrl('https://example.com/'), 'wss://example.com/ws');
  assert.equal(webSocketUrl('https://example.com/app/'), 'wss://example.com/app/ws');
  assert.equal(webSocketUrl('http://h/app/index.html?x=1#top'), 'ws://h/app/ws');
  assert.equal(webSocketUrl('http://[::1]:9000/a/b/'), 'ws://[::1]:9000/a/b/ws');
});

test('reverseText reverses by Unicode scalar values', () => {
  assert.equal(reverseText('héllo'), 'olléh');
  assert.equal(reverseText('a😀b'), 'b😀a');
  assert.equal(reverseText('日本語'), '語本日');
});

test('parseAlive accepts alive messages only', () => {
  assert.deepEqual(parseAlive(alive('pod-a', 5000)), {
    instance: 'pod-a',
    phase: 'serving',
    intervalMs: 5000,
    uptimeMs: 5,
    event: null,
  });
  assert.equal(parseAlive('{"type":"other","instance":"x"}'), null);
  assert.equal(parseAlive('{"alive" broken'), null);
  assert.equal(parseAlive('olleh'), null);
});

// --- backoff ----------------------------------------------------------------------------------------

test('backoff cap doubles from 0.5 s and stops at 30 s', () => {
  const caps = [0, 1, 2, 3, 4, 5, 6, 7, 100].map((a) => backoffCapMs(a, DEFAULTS));
  assert.deepEqual(caps, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});

test('reconnect delays use full jitter within min(30 s, 0.5 s x 2^attempt)', () => {
  // random() near 1 gives the upper bound, 0 the lower one.
  const { clock, client, last, of } = setup({ random: scripted([0.999999, 0, 0.999999, 0.999999, 0.999999, 0.999999, 0.999999, 0.999999, 0.999999]) });
  client.start();
  const delays = [];
  for (let i = 0; i < 9; i++) {
    last().serverClose(1006);
    const state = of('state').at(-1);
    assert.equal(state.state, 'reconnecting');
    delays.push(state.delayMs);
    assert.equal(state.retryAt, clock.t + state.delayMs);
    clock.advance(state.delayMs);
    assert.equal(client.state, 'connecting', 'reconnects when the delay is over');
  }
  const caps = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
  assert.equal(delays[1], 0, 'full jitter: the delay can be 0');
  delays.forEach((d, i) => {
    assert.ok(d >= 0 && d <= caps[i], `delay ${i} = ${d} within [0, ${caps[i]}]`);
    if (i !== 1) assert.ok(d > caps[i] * 0.999, `delay ${i} = ${d} reaches its cap ${caps[i]}`);
  });
});

test('the attempt counter resets after 30 s of stable connection, not before', () => {
  const { clock, client, last, of, serve } = setup({ random: () => 0.999999 });
  client.start();
  for (let i = 0; i < 4; i++) {
    last().serverClose(1006);
    clock.advance(of('state').at(-1).delayMs);
  }
  assert.equal(client.attempt, 4);
  // Open for 29 s, then lost: the backoff keeps growing.
  last().open();
  serve(29_000);
  last().serverClose(1006);
  let state = of('state').at(-1);
  assert.ok(state.delayMs > 7_900 && state.delayMs <= 8_000, `grew to ${state.delayMs}`);
  clock.advance(state.delayMs);
  // Open for 30 s: reset, the next delay is within 0.5 s again.
  last().open();
  serve(30_000);
  assert.equal(client.attempt, 0);
  last().serverClose(1006);
  state = of('state').at(-1);
  assert.ok(state.delayMs <= 500, `reset to ${state.delayMs}`);
});

// --- the 1012 path ----------------------------------------------------------------------------------

for (const code of [1012, 1001]) {
  test(`close ${code}: "restarting", reconnect after a random 0.2-3 s, backoff after that`, () => {
    const randoms = [0, 0.5, 0.999999]; // restart delay, backoff, restart delay
    const { clock, client, sockets, last, of, serve } = setup({ random: scripted(randoms) });
    client.start();
    last().open();
    serve(60_000);
    last().serverClose(code, 'server restarting; reconnect');
    let state = of('state').at(-1);
    assert.equal(state.state, 'restarting');
    assert.equal(state.code, code);
    assert.equal(state.reason, 'server restarting; reconnect');
    assert.equal(state.delayMs, 200, 'random 0 → 0.2 s');
    clock.advance(199);
    assert.equal(sockets.length, 1, 'waits the restart delay');
    clock.advance(1);
    assert.equal(sockets.length, 2);
    assert.equal(client.state, 'connecting');
    // The new pod is not there yet: ordinary backoff from attempt 0.
    last().serverClose(1006);
    state = of('state').at(-1);
    assert.equal(state.state, 'reconnecting');
    assert.equal(state.delayMs, 250, 'attempt 0: random(0, 0.5 s)');
    clock.advance(state.delayMs);
    last().open();
    assert.equal(client.state, 'open');
    // The restart delay's upper bound.
    last().serverClose(code);
    assert.ok(Math.abs(of('state').at(-1).delayMs - 3000) < 1, 'random near 1 → 3 s');
  });
}

test('4xxx from the server stops reconnecting and says why', () => {
  const { clock, client, sockets, last, of } = setup();
  client.start();
  last().open();
  last().serverClose(4003, 'banned for testing');
  const state = of('state').at(-1);
  assert.equal(state.state, 'stopped');
  assert.equal(state.code, 4003);
  assert.equal(state.reason, 'banned for testing');
  clock.advance(120_000);
  assert.equal(sockets.length, 1, 'no reconnect');
  client.start(); // the user asks again
  assert.equal(sockets.length, 2);
});

// --- queue, resend, FIFO, no duplicates ---------------------------------------------------------------

test('messages typed while disconnected are pending, then sent in order on open', () => {
  const { client, last, of } = setup();
  client.start();
  const a = client.send('eins');
  const b = client.send('zwei');
  assert.deepEqual(client.pending.map((m) => m.seq), [a.seq, b.seq]);
  assert.equal(of('sent').length, 0);
  last().open();
  assert.deepEqual(last().sent, ['eins', 'zwei']);
  last().answerAll();
  const replies = of('reply');
  assert.deepEqual(replies.map((r) => [r.message.seq, r.reply]), [[a.seq, 'snie'], [b.seq, 'iewz']]);
  assert.equal(client.pending.length, 0);
});

test('unanswered messages survive a close, are re-sent in order, and each is answered once', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  last().receive(alive('pod-a'));
  const texts = ['one', 'two', 'three', 'four'];
  const seqs = texts.map((t) => client.send(t).seq);
  // The server answers the first one; then restarts before answering the rest.
  const first = last();
  first.receive(reverseText('one'));
  first.serverClose(1012, 'server restarting; reconnect');
  assert.deepEqual(of('requeued').at(-1).messages.map((m) => m.text), ['two', 'three', 'four']);
  client.send('five'); // typed during the outage
  clock.advance(of('state').at(-1).delayMs);
  last().open();
  assert.deepEqual(last().sent, ['two', 'three', 'four', 'five'], 'unanswered first, in order');
  last().receive(alive('pod-b'));
  last().answerAll();
  // A reply from the old socket arriving late is not shown again.
  first.receive(reverseText('two'));
  const replies = of('reply');
  assert.deepEqual(replies.map((r) => r.message.text), ['one', 'two', 'three', 'four', 'five']);
  assert.deepEqual(replies.map((r) => r.reply), ['eno', 'owt', 'eerht', 'ruof', 'evif']);
  assert.equal(new Set(replies.map((r) => r.message.seq)).size, replies.length, 'no duplicates');
  assert.deepEqual(replies.map((r) => r.instance), ['pod-a', 'pod-b', 'pod-b', 'pod-b', 'pod-b']);
  assert.deepEqual(replies.slice(0, 1).map((r) => r.message.seq), seqs.slice(0, 1));
  assert.equal(replies[1].message.sends, 2, '"two" went out twice');
  assert.equal(client.pending.length, 0);
});

test('replies match first-in, first-out, even one that looks like an alive message', () => {
  const { client, last, of } = setup();
  client.start();
  last().open();
  const tricky = reverseText(alive('evil', 1));
  client.send('a');
  client.send(tricky);
  client.send('a'); // same text twice: two rows, two replies
  last().answerAll();
  const replies = of('reply');
  assert.deepEqual(replies.map((r) => r.message.seq), [1, 2, 3]);
  assert.equal(replies[1].reply, alive('evil', 1));
  assert.equal(of('alive').length, 0, 'the reply was not taken for an alive message');
});

test('an alive message between replies is not taken for a reply', () => {
  const { client, last, of } = setup();
  client.start();
  last().open();
  client.send('ab');
  client.send('cd');
  last().receive('ba');
  last().receive(alive('pod-a'));
  last().receive('dc');
  assert.deepEqual(of('reply').map((r) => r.reply), ['ba', 'dc']);
  assert.equal(of('alive').length, 1);
  assert.equal(of('alive')[0].instance, 'pod-a');
});

test('replies before the first alive of a connection have no instance yet; the alive says first', () => {
  const { client, last, of } = setup();
  client.start();
  last().open();
  client.send('x');
  last().answerAll();
  assert.equal(of('reply')[0].instance, null);
  last().receive(alive('pod-c'));
  last().receive(alive('pod-c'));
  assert.deepEqual(of('alive').map((a) => [a.first, a.connection]), [[true, 1], [false, 1]]);
});

test('a message over the server limit is refused, not queued', () => {
  const { client, of } = setup({ maxMessageBytes: 10 });
  assert.equal(client.send('ééééé'), client.pending[0]); // 10 bytes
  assert.equal(client.send('éééééé'), null); // 12 bytes
  assert.equal(client.send(''), null);
  assert.equal(of('rejected').length, 1);
  assert.equal(client.pending.length, 1);
});

test('beyond maxPending unanswered messages send() refuses, until replies come', () => {
  const { client, of, last } = setup({ maxPending: 3 });
  for (const text of ['a', 'b', 'c']) assert.ok(client.send(text));
  assert.equal(client.send('d'), null, 'a fourth is refused');
  assert.match(of('rejected')[0].reason, /^3 messages are waiting for their replies; at most 3 may$/);
  assert.deepEqual(client.pending.map((m) => m.text), ['a', 'b', 'c']);
  client.start();
  last().open();
  last().receive('a');
  assert.ok(client.send('e'), 'one answered: room for one more');
  assert.equal(client.send('f'), null);
  assert.deepEqual(client.pending.map((m) => m.text), ['b', 'c', 'e']);
  assert.equal(of('rejected').length, 2);
});

// --- browser signals --------------------------------------------------------------------------------

test('offline stops trying; online reconnects at once', () => {
  const { clock, client, sockets, last, of } = setup();
  client.start();
  last().open();
  client.send('kept');
  const first = last();
  client.setOnline(false);
  assert.equal(client.state, 'offline');
  assert.ok(first.closedWith);
  assert.deepEqual(client.pending.map((m) => m.text), ['kept']);
  clock.advance(300_000);
  assert.equal(sockets.length, 1, 'no attempts while offline');
  client.setOnline(true);
  assert.equal(client.state, 'connecting');
  assert.equal(sockets.length, 2, 'at once');
  last().open();
  assert.deepEqual(last().sent, ['kept']);
  assert.ok(of('state').some((s) => s.state === 'offline'));
});

test('starting offline waits for online', () => {
  const { client, sockets } = setup({ online: false });
  client.start();
  assert.equal(client.state, 'offline');
  assert.equal(sockets.length, 0);
  client.setOnline(true);
  assert.equal(sockets.length, 1);
});

test('wake() (page visible again) retries at once when waiting, and does nothing when open', () => {
  const { clock, client, sockets, last } = setup({ random: () => 0.999999 });
  client.start();
  for (let i = 0; i < 5; i++) {
    last().serverClose(1006);
    clock.advance(client.retryAt - clock.t);
  }
  last().serverClose(1006);
  assert.equal(client.state, 'reconnecting');
  const before = sockets.length;
  client.wake();
  assert.equal(sockets.length, before + 1);
  assert.equal(client.state, 'connecting');
  assert.deepEqual(clock.pendingDelays().length, 1, 'only the connect timeout is pending');
  last().open();
  client.wake();
  assert.equal(sockets.length, before + 1);
});

test('stop() closes and stays stopped; the queue is kept', () => {
  const { clock, client, sockets, last } = setup();
  client.start();
  last().open();
  client.send('later');
  client.stop('user');
  assert.equal(client.state, 'stopped');
  clock.advance(100_000);
  assert.equal(sockets.length, 1);
  client.start();
  last().open();
  assert.deepEqual(last().sent, ['later']);
});

test('nothing is sent on a socket that is closing; it goes out on the next one', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  client.send('a');
  last().answerAll();
  const old = last();
  old.readyState = 2; // the server's close frame came; the close event has not yet
  client.send('b');
  assert.deepEqual(old.sent, [], 'not sent on the closing socket');
  assert.deepEqual(old.dropped, [], 'not handed to it either: a browser would have discarded it');
  assert.equal(of('sent').length, 1);
  old.serverClose(1012);
  clock.advance(of('state').at(-1).delayMs);
  last().open();
  assert.deepEqual(last().sent, ['b']);
});
