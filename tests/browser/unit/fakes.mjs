// The fakes the unit tests of static/client.js drive it with: a clock whose timers run when told,
// a WebSocket whose server side the test plays, a scripted random source, and the server's texts.
import { WsClient } from '../../../static/client.js';
import { reverseText } from '../../../static/protocol.js';

// --- fakes -----------------------------------------------------------------------------------------

export class FakeClock {
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

  /** The delays of every pending timer, soonest first. */
  pendingDelays() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
}

export function fakeWebSocketClass() {
  const sockets = [];
  sockets.peakLive = 0; // the most sockets neither side had closed, at any time
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.dropped = []; // sent while closing or closed: a browser discards them without an error
      this.closedWith = null;
      this.readyState = 0;
      sockets.push(this);
      const live = sockets.filter((s) => s.readyState !== 3).length;
      sockets.peakLive = Math.max(sockets.peakLive, live);
    }
    // As a browser's: send() throws only before the socket opened; close() throws on a code a page
    // may not send and on a reason over 123 bytes of UTF-8.
    send(text) {
      if (this.readyState === 0) throw new Error('InvalidStateError: still connecting');
      if (this.readyState === 1) this.sent.push(text);
      else this.dropped.push(text);
    }
    close(code, reason = '') {
      if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new Error(`InvalidAccessError: close code ${code}`);
      }
      if (new TextEncoder().encode(reason).length > 123) throw new Error('SyntaxError: reason over 123 bytes');
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
    /** The server answers the first `n` messages sent and not yet answered, reversed, in order. */
    answer(n) {
      for (const text of this.sent.splice(0, n)) this.receive(reverseText(text));
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
export function scripted(values, rest = 0.5) {
  const queue = [...values];
  return () => (queue.length ? queue.shift() : rest);
}

export function setup(options = {}) {
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
  /** Sockets neither closed by the client nor by the server. */
  const live = () => sockets.filter((s) => s.readyState !== 3);
  /** Every state the client went through, in order. */
  const states = () => of('state').map((s) => s.state);
  return { clock, client, sockets, events, last, of, serve, live, states };
}

export const alive = (instance, intervalMs = 1000, phase = 'serving') =>
  JSON.stringify({ type: 'alive', instance, phase, interval_ms: intervalMs, uptime_ms: 5 });

// The server's hello and goaway notice, fields in the server's order (issue 13).
export const hello = (instance, intervalMs = 1000, handoverMs = 5000) =>
  `{"type":"alive","event":"hello","instance":"${instance}","phase":"serving","interval_ms":${intervalMs},"uptime_ms":7,"handover_ms":${handoverMs}}`;
export const goaway = (instance, intervalMs = 1000, closeInMs = 5000) =>
  `{"type":"alive","event":"goaway","instance":"${instance}","phase":"draining","interval_ms":${intervalMs},"uptime_ms":9,"close_in_ms":${closeInMs}}`;

/** A client connected to pod-a (its hello came), with the handover's bookkeeping at hand. */
export function handoverSetup(options = {}) {
  const t = setup(options);
  t.client.start();
  t.sockets[0].open();
  t.sockets[0].receive(hello('pod-a'));
  return t;
}

/** The handover's common start: m1 sent on pod-a's socket `a`, its notice, pod-b's socket `b` open
 * with its hello; `a` still owes m1's reply. */
export function movedWithOneOwed({ client, sockets }) {
  const a = sockets[0];
  client.send('m1');
  a.receive(goaway('pod-a'));
  const b = sockets[1];
  b.open();
  b.receive(hello('pod-b'));
  return { a, b };
}
