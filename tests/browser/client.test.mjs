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
  for (const type of ['state', 'queued', 'sent', 'requeued', 'reply', 'alive', 'dead', 'rejected']) {
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
