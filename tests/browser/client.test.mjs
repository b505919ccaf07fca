// Unit tests of static/client.js with a fake clock, a fake WebSocket and a scripted random source.
// Run: node --test tests/browser/client.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  WsClient,
  DEFAULTS,
  backoffCapMs,
  parseAlive,
  reverseText,
  webSocketUrl,
} from '../../static/client.js';

// --- fakes -----------------------------------------------------------------------------------------

class FakeClock {
  constructor() {
    this.t = 1_000_000;
    this.timers = new Map();
    this.nextId = 1;
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  /** Runs every timer due within `ms`, in time order, moving the clock along. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }

  /** The delay of the one pending timer that will reconnect (the soonest one). */
  pendingDelays() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
}

function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      this.readyState = 0;
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(text);
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 3;
    }
    // test side
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    receive(data) {
      this.onmessage?.({ data });
    }
    serverClose(code, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean: code !== 1006 });
    }
    /** The server's behaviour: answer every message sent so far, reversed, in order. */
    answerAll() {
      const pending = this.sent.splice(0);
      for (const text of pending) this.receive(reverseText(text));
    }
  }
  return { FakeWebSocket, sockets };
}

/** A random source that returns the given values in turn, then `rest`. */
function scripted(values, rest = 0.5) {
  const queue = [...values];
  return () => (queue.length ? queue.shift() : rest);
}

function setup(options = {}) {
  const clock = new FakeClock();
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const client = new WsClient({
    url: 'ws://example.test/ws',
    WebSocket: FakeWebSocket,
    clock,
    random: options.random ?? (() => 0.5),
    ...options,
  });
  const events = [];
  for (const type of ['state', 'queued', 'sent', 'requeued', 'reply', 'hello', 'alive', 'handover', 'dead', 'rejected']) {
    client.addEventListener(type, (event) => events.push({ type, ...event.detail }));
  }
  const last = () => sockets[sockets.length - 1];
  const of = (type) => events.filter((e) => e.type === type);
  /** Advances the clock by `ms` while the server sends an alive message every `intervalMs`. */
  const serve = (ms, intervalMs = 1000) => {
    for (let left = ms; left > 0; left -= intervalMs) {
      clock.advance(Math.min(intervalMs, left));
      last().receive(alive('pod-a', intervalMs));
    }
  };
  return { clock, client, sockets, events, last, of, serve };
}

const alive = (instance, intervalMs = 1000, phase = 'serving') =>
  JSON.stringify({ type: 'alive', instance, phase, interval_ms: intervalMs, uptime_ms: 5 });

// The server's hello and goaway notice, fields in the server's order (issue 13).
const hello = (instance, intervalMs = 1000, handoverMs = 5000) =>
  `{"type":"alive","event":"hello","instance":"${instance}","phase":"serving","interval_ms":${intervalMs},"uptime_ms":7,"handover_ms":${handoverMs}}`;
const goaway = (instance, intervalMs = 1000, closeInMs = 5000) =>
  `{"type":"alive","event":"goaway","instance":"${instance}","phase":"draining","interval_ms":${intervalMs},"uptime_ms":9,"close_in_ms":${closeInMs}}`;

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

// --- dead-link detection ----------------------------------------------------------------------------

test('no alive message for 2x its interval: close and reconnect', () => {
  const { clock, client, sockets, last, of } = setup();
  client.start();
  last().open();
  clock.advance(9_999);
  assert.equal(client.state, 'open', 'no alive yet: watched with the default 5 s interval');
  last().receive(alive('pod-a', 1000));
  clock.advance(1_500);
  last().receive(alive('pod-a', 1000)); // on time
  clock.advance(1_999);
  assert.equal(client.state, 'open');
  assert.equal(of('dead').length, 0);
  const old = last();
  clock.advance(1);
  assert.equal(of('dead').length, 1);
  assert.deepEqual(of('dead')[0], { type: 'dead', silentMs: 2000, limitMs: 2000 });
  assert.ok(old.closedWith, 'the dead socket is closed');
  assert.equal(client.state, 'reconnecting');
  // Late events of the given-up socket are ignored.
  old.receive(alive('pod-a', 1000));
  old.serverClose(1006);
  assert.equal(client.state, 'reconnecting');
  clock.advance(of('state').at(-1).delayMs);
  assert.equal(sockets.length, 2);
});

test('open, then no message at all for 2x the default interval: close and reconnect', () => {
  // A server that freezes right after the handshake never sends its first alive message.
  const { clock, client, sockets, last, of } = setup();
  assert.equal(DEFAULTS.aliveIntervalMs, 5_000, "the server's default ALIVE_INTERVAL");
  client.start();
  const frozen = last();
  frozen.open();
  clock.advance(9_999);
  assert.equal(client.state, 'open');
  assert.equal(of('dead').length, 0);
  clock.advance(1);
  assert.deepEqual(of('dead'), [{ type: 'dead', silentMs: 10_000, limitMs: 10_000 }]);
  assert.deepEqual(frozen.closedWith, { code: 4000, reason: 'no alive message' });
  assert.equal(client.state, 'reconnecting');
  clock.advance(of('state').at(-1).delayMs);
  assert.equal(sockets.length, 2, 'reconnected');
});

test('a new connection is watched with the interval of the last alive message, before its own', () => {
  const { clock, client, sockets, last, of } = setup();
  client.start();
  last().open();
  last().receive(alive('pod-a', 1000));
  last().serverClose(1012);
  clock.advance(of('state').at(-1).delayMs);
  const frozen = last();
  frozen.open();
  clock.advance(1_999);
  assert.equal(of('dead').length, 0);
  clock.advance(1);
  assert.deepEqual(of('dead'), [{ type: 'dead', silentMs: 2_000, limitMs: 2_000 }]);
  assert.ok(frozen.closedWith);
  clock.advance(of('state').at(-1).delayMs);
  assert.equal(sockets.length, 3);
});

test('before the first alive, any message from the server keeps the link alive', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  for (let i = 0; i < 5; i++) {
    clock.advance(9_000);
    client.send(`m${i}`);
    last().answerAll();
  }
  assert.equal(of('dead').length, 0);
  assert.equal(client.state, 'open');
  clock.advance(10_000);
  assert.equal(of('dead').length, 1, 'then silence is still caught');
});

test('any message from the server proves the link alive', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  last().receive(alive('pod-a', 1000));
  client.send('x');
  for (let i = 0; i < 10; i++) {
    clock.advance(1_500);
    client.send(`m${i}`);
    last().answerAll(); // the server skips alive messages while it has output pending
  }
  assert.equal(of('dead').length, 0);
  assert.equal(client.state, 'open');
});

test('a socket that never opens is given up after the connect timeout', () => {
  const { clock, client, sockets } = setup({ connectTimeoutMs: 5_000 });
  client.start();
  clock.advance(4_999);
  assert.equal(client.state, 'connecting');
  clock.advance(1);
  assert.equal(client.state, 'reconnecting');
  assert.ok(sockets[0].closedWith);
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

/** A client connected to pod-a (its hello came), with the handover's bookkeeping at hand. */
function handoverSetup(options = {}) {
  const t = setup(options);
  t.client.start();
  t.sockets[0].open();
  t.sockets[0].receive(hello('pod-a'));
  /** Sockets neither closed by the client nor by the server. */
  t.live = () => t.sockets.filter((s) => s.readyState !== 3);
  /** Every state the client went through, in order. */
  t.states = () => t.of('state').map((s) => s.state);
  return t;
}

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
  const { client, sockets, live, states, of } = handoverSetup();
  const [a] = sockets;
  client.send('m1');
  a.receive(goaway('pod-a'));
  const b = sockets[1];
  b.open();
  b.receive(hello('pod-b'));
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
  const a = sockets[0];
  client.send('m1');
  a.receive(goaway('pod-a'));
  const b = sockets[1];
  b.open();
  b.receive(hello('pod-b'));
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
  assert.equal(of('sent').length, 1);
  old.serverClose(1012);
  clock.advance(of('state').at(-1).delayMs);
  last().open();
  assert.deepEqual(last().sent, ['b']);
});

// --- the tier ---------------------------------------------------------------------------------------

test('the browser tier names its unit test file: Node >= 21 takes a directory for a file', () => {
  const tier = readFileSync(new URL('../tiers/browser.sh', import.meta.url), 'utf8');
  const runs = [...tier.matchAll(/^(?:timeout \d+ )?node --test (\S+)$/gm)].map((m) => m[1]);
  assert.deepEqual(runs, ['tests/browser/client.test.mjs']);
});
