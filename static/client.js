// The connection and queue logic of the wsdrain page, without any DOM access.
//
// `WsClient` keeps one WebSocket open to the server, reconnects by itself, and makes sure that
// nothing typed is lost: every message gets a sequence number and stays queued until its reply
// came; replies are matched first-in, first-out; unanswered messages are re-sent, in order, on the
// next connection. The page (app.js) only renders the events this class dispatches:
//
//   state    {state, code, reason, retryAt, delayMs, attempt}  connection state changed
//   queued   {message}                                          a message was accepted
//   sent     {message}                                          a message went out on a socket
//   requeued {messages}                                         sent, unanswered, socket gone: pending
//   reply    {message, reply, rttMs, instance, connection}      a message was answered (once)
//   alive    {instance, phase, intervalMs, uptimeMs, at, connection, first}
//   dead     {silentMs, limitMs}                                no alive message in time: link closed
//   rejected {text, reason}                                     send() refused a message
//
// Everything from the outside world is injected (WebSocket constructor, clock and timers, random
// source), so tests drive it with fakes. Events carry their data in `event.detail`.

/** Reconnect policy and limits; every field may be overridden in the constructor options. */
export const DEFAULTS = Object.freeze({
  baseDelayMs: 500, // backoff: delay = random(0, min(maxDelayMs, baseDelayMs * 2^attempt))
  maxDelayMs: 30_000,
  stableMs: 30_000, // the attempt counter is reset after this long on one open connection
  restartMinMs: 200, // after close 1012/1001: wait random(restartMinMs, restartMaxMs) first
  restartMaxMs: 3_000,
  deadFactor: 2, // no alive message for deadFactor x interval_ms: the link is dead
  aliveIntervalMs: 5_000, // the server's default ALIVE_INTERVAL: the watchdog's interval until an alive says
  connectTimeoutMs: 10_000, // a socket not open by then is given up and retried
  maxMessageBytes: 65_536, // the server's MAX_MESSAGE_SIZE: larger messages would be closed with 1009
});

/** The states a client is in; the page shows each in words. */
export const STATES = Object.freeze([
  'idle', // not started
  'connecting', // a socket is being opened
  'open', // connected
  'restarting', // the server closed with 1012/1001; waiting a short random time to reconnect
  'reconnecting', // waiting for the backoff delay (retryAt) to reconnect
  'offline', // the browser is offline: not trying until it is online again
  'stopped', // the server closed with 4xxx, or stop() was called: not trying (see code/reason)
]);

/** Close codes after which the server asked to come back soon: Service Restart and Going Away. */
const RESTART_CODES = new Set([1012, 1001]);

/** The data of an event, in `event.detail` (like CustomEvent, which older Node lacks). */
export class ClientEvent extends Event {
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

/** The WebSocket URL for a page at `href`: `ws` next to the page, `wss:` under `https:`. */
export function webSocketUrl(href) {
  const url = new URL('ws', href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  return url.href;
}

/** What the server answers: the text reversed by Unicode scalar values. */
export function reverseText(text) {
  return Array.from(text).reverse().join('');
}

/** The upper bound of the backoff delay before reconnect attempt `attempt` (0-based). */
export function backoffCapMs(attempt, { baseDelayMs, maxDelayMs } = DEFAULTS) {
  return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(attempt, 52));
}

/** Parses an alive message, or returns null if `text` is not one. */
export function parseAlive(text) {
  if (!text.startsWith('{') || !text.includes('"alive"')) return null;
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || value.type !== 'alive' || typeof value.instance !== 'string') return null;
  const intervalMs = Number(value.interval_ms);
  return {
    instance: value.instance,
    phase: String(value.phase ?? ''),
    intervalMs: Number.isFinite(intervalMs) && intervalMs > 0 ? intervalMs : 0,
    uptimeMs: Number(value.uptime_ms) || 0,
  };
}

const utf8 = new TextEncoder();

export class WsClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url  WebSocket URL (see webSocketUrl)
   * @param {Function} [options.WebSocket]  constructor, default globalThis.WebSocket
   * @param {{now: Function, setTimeout: Function, clearTimeout: Function}} [options.clock]
   * @param {Function} [options.random]  returns a number in [0, 1), default Math.random
   * @param {boolean} [options.online]  whether the browser is online at start (navigator.onLine)
   */
  constructor(options = {}) {
    super();
    if (!options.url) throw new TypeError('WsClient needs a url');
    this.url = options.url;
    this.config = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS)) {
      if (options[key] !== undefined) this.config[key] = options[key];
    }
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    const clock = options.clock ?? {};
    this._now = clock.now ?? (() => Date.now());
    this._setTimeout = clock.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = clock.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this._random = options.random ?? Math.random;
    this._online = options.online ?? true;

    this.state = 'idle';
    this.attempt = 0; // reconnect attempts since the last stable connection
    this.connections = 0; // sockets opened so far; the id of the current one
    this.instance = null; // the instance of the current connection, once its alive came
    this.lastAlive = null;
    this.closeCode = null;
    this.closeReason = '';
    this.retryAt = null;

    this._ws = null;
    this._queue = []; // unanswered messages, in order; the first `_inFlight` went out on _ws
    this._inFlight = 0;
    this._nextSeq = 1;
    this._timers = { retry: null, connect: null, stable: null, watchdog: null };
    this._lastHeard = 0; // when the current socket last received anything
    this._deadLimitMs = 0; // silence after which the current socket is dead; set on open
    // The latest interval_ms an alive message announced, kept across connections: a new socket is
    // watched from its open on, before its own first alive (a server frozen right after the
    // handshake sends none).
    this._aliveIntervalMs = this.config.aliveIntervalMs;
  }

  /** Unanswered messages, in order (the first ones may be waiting for their reply). */
  get pending() {
    return this._queue.slice();
  }

  /** Starts connecting (or waits for `online` when the browser is offline). */
  start() {
    if (this.state !== 'idle' && this.state !== 'stopped') return;
    this.attempt = 0;
    this.closeCode = null;
    this.closeReason = '';
    if (!this._online) {
      this._setState('offline');
      return;
    }
    this._connect();
  }

  /** Stops trying: closes the socket; queued messages stay queued for a later start(). */
  stop(reason = 'stopped') {
    this._dropSocket(1000, reason);
    this._clearTimer('retry');
    this.closeCode = null;
    this.closeReason = reason;
    this._setState('stopped');
  }

  /**
   * Queues `text` and sends it when connected. Returns the message ({seq, text, queuedAt, sentAt,
   * sends}), or null for empty text or text over the server's message size (a `rejected` event).
   */
  send(text) {
    text = String(text);
    if (text.length === 0) return null;
    const bytes = utf8.encode(text).length;
    if (bytes > this.config.maxMessageBytes) {
      this._emit('rejected', {
        text,
        reason: `message is ${bytes} bytes; the server takes at most ${this.config.maxMessageBytes}`,
      });
      return null;
    }
    const message = { seq: this._nextSeq++, text, queuedAt: this._now(), sentAt: null, sends: 0 };
    this._queue.push(message);
    this._emit('queued', { message });
    if (this.state === 'open') this._flush();
    return message;
  }

  /** The browser went online or offline (the window's `online` / `offline` events). */
  setOnline(online) {
    this._online = online;
    if (!online) {
      if (this.state === 'stopped' || this.state === 'idle') return;
      this._clearTimer('retry');
      this._dropSocket(4001, 'browser offline');
      this._setState('offline');
    } else if (this.state === 'offline') {
      this.attempt = 0;
      this._connect();
    }
  }

  /** The page became visible again: when disconnected and waiting to retry, try at once. */
  wake() {
    if ((this.state === 'reconnecting' || this.state === 'restarting') && this._online) {
      this._clearTimer('retry');
      this._connect();
    }
  }

  // --- connection -------------------------------------------------------------------------------

  _connect() {
    this._clearTimer('retry');
    this.retryAt = null;
    this.instance = null;
    this._deadLimitMs = 0;
    this._requeue(); // (nothing is in flight without a socket)
    this.connections += 1;
    const connection = this.connections;
    this._setState('connecting');
    let ws;
    try {
      ws = new this._WebSocket(this.url);
    } catch (error) {
      // A URL the browser refuses will not get better by retrying.
      this.closeCode = null;
      this.closeReason = `cannot connect: ${error?.message ?? error}`;
      this._setState('stopped');
      return;
    }
    this._ws = ws;
    ws.onopen = () => this._onOpen(ws, connection);
    ws.onmessage = (event) => this._onMessage(ws, connection, event);
    ws.onclose = (event) => this._onClose(ws, event.code, event.reason);
    ws.onerror = () => {}; // always followed by close
    this._timers.connect = this._setTimeout(() => {
      this._timers.connect = null;
      if (this._ws === ws && this.state === 'connecting') {
        this._dropSocket(4002, 'connect timeout');
        this._scheduleRetry(null, 'connect timeout');
      }
    }, this.config.connectTimeoutMs);
  }

  _onOpen(ws, connection) {
    if (ws !== this._ws) return;
    this._clearTimer('connect');
    this._lastHeard = this._now();
    this.closeCode = null;
    this.closeReason = '';
    this._setState('open', { connection });
    this._deadLimitMs = this._aliveIntervalMs * this.config.deadFactor;
    this._armWatchdog();
    this._timers.stable = this._setTimeout(() => {
      this._timers.stable = null;
      if (ws === this._ws && this.state === 'open') this.attempt = 0;
    }, this.config.stableMs);
    this._flush();
  }

  _onMessage(ws, connection, event) {
    if (ws !== this._ws) return; // a socket given up on: its late replies are not ours
    const text = typeof event.data === 'string' ? event.data : null;
    if (text === null) return; // the server sends only text
    const now = this._now();
    this._lastHeard = now;
    const head = this._inFlight > 0 ? this._queue[0] : null;
    // A reply that happens to look like an alive message is still the head's reply.
    if (head && text === reverseText(head.text)) {
      this._answer(head, text, now, connection);
      return;
    }
    const alive = parseAlive(text);
    if (alive) {
      const first = this.instance === null;
      this.instance = alive.instance;
      this.lastAlive = { ...alive, at: now, connection, first };
      if (alive.intervalMs > 0) {
        this._aliveIntervalMs = alive.intervalMs;
        this._deadLimitMs = alive.intervalMs * this.config.deadFactor;
        this._armWatchdog();
      }
      this._emit('alive', this.lastAlive);
      return;
    }
    // Not the reversal we expected (another server mode): replies are still first-in, first-out.
    if (head) this._answer(head, text, now, connection);
  }

  _answer(message, reply, now, connection) {
    this._queue.shift();
    this._inFlight -= 1;
    this._emit('reply', {
      message,
      reply,
      rttMs: now - message.sentAt,
      instance: this.instance,
      connection,
    });
  }

  _onClose(ws, code, reason) {
    if (ws !== this._ws) return;
    this._detach(ws);
    this._ws = null;
    this._clearConnectionTimers();
    this._requeue();
    this.closeCode = code;
    this.closeReason = reason ?? '';
    if (code >= 4000 && code <= 4999) {
      // The server refuses this client: retrying would not help; show why.
      this._setState('stopped', { code, reason: this.closeReason });
      return;
    }
    if (!this._online) {
      this._setState('offline', { code, reason: this.closeReason });
      return;
    }
    if (RESTART_CODES.has(code)) {
      const { restartMinMs, restartMaxMs } = this.config;
      const delayMs = restartMinMs + this._random() * (restartMaxMs - restartMinMs);
      this._retryIn(delayMs, 'restarting', { code, reason: this.closeReason });
      return;
    }
    this._scheduleRetry(code, this.closeReason);
  }

  /** Backoff with full jitter: random(0, min(cap, base * 2^attempt)), then attempt += 1. */
  _scheduleRetry(code, reason) {
    const delayMs = this._random() * backoffCapMs(this.attempt, this.config);
    this.attempt += 1;
    this._retryIn(delayMs, 'reconnecting', { code, reason });
  }

  _retryIn(delayMs, state, info) {
    this._clearTimer('retry');
    this.retryAt = this._now() + delayMs;
    this._timers.retry = this._setTimeout(() => {
      this._timers.retry = null;
      this._connect();
    }, delayMs);
    this._setState(state, { ...info, delayMs });
  }

  _armWatchdog() {
    this._clearTimer('watchdog');
    const due = this._lastHeard + this._deadLimitMs - this._now();
    this._timers.watchdog = this._setTimeout(() => {
      this._timers.watchdog = null;
      if (this.state !== 'open' || !this._ws) return;
      const silentMs = this._now() - this._lastHeard;
      if (silentMs < this._deadLimitMs) {
        this._armWatchdog(); // heard something since (or the timer ran early)
        return;
      }
      this._emit('dead', { silentMs, limitMs: this._deadLimitMs });
      this._dropSocket(4000, 'no alive message');
      this._scheduleRetry(null, 'no alive message');
    }, Math.max(0, due));
  }

  /** Gives up on the current socket at once: its handlers go, late events are ignored. */
  _dropSocket(code, reason) {
    const ws = this._ws;
    this._clearConnectionTimers();
    if (!ws) return;
    this._ws = null;
    this._detach(ws);
    try {
      ws.close(code, reason);
    } catch {
      // already closed
    }
    this._requeue();
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  /** Messages sent on a socket that is gone are unanswered: they go out again, first, in order. */
  _requeue() {
    if (this._inFlight > 0) {
      const messages = this._queue.slice(0, this._inFlight);
      this._inFlight = 0;
      this._emit('requeued', { messages });
    }
  }

  _flush() {
    const ws = this._ws;
    while (ws && this.state === 'open' && this._inFlight < this._queue.length) {
      // CLOSING (the server's close frame came; the close event has not yet): a send would be
      // dropped (with a console error); the message waits for the next connection instead.
      if (ws.readyState !== 1) return;
      const message = this._queue[this._inFlight];
      try {
        ws.send(message.text);
      } catch {
        return; // the socket is closing; its close event re-queues
      }
      message.sentAt = this._now();
      message.sends += 1;
      this._inFlight += 1;
      this._emit('sent', { message });
    }
  }

  _clearConnectionTimers() {
    this._clearTimer('connect');
    this._clearTimer('stable');
    this._clearTimer('watchdog');
  }

  _clearTimer(name) {
    if (this._timers[name] !== null) {
      this._clearTimeout(this._timers[name]);
      this._timers[name] = null;
    }
  }

  _setState(state, info = {}) {
    this.state = state;
    if (state !== 'reconnecting' && state !== 'restarting') this.retryAt = null;
    this._emit('state', {
      state,
      code: info.code ?? null,
      reason: info.reason ?? '',
      delayMs: info.delayMs ?? null,
      retryAt: this.retryAt,
      attempt: this.attempt,
      connection: info.connection ?? this.connections,
    });
  }

  _emit(type, detail) {
    this.dispatchEvent(new ClientEvent(type, detail));
  }
}
