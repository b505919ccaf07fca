// The connection and queue logic of the wsdrain page, without any DOM access.
//
// `WsClient` keeps one WebSocket open to the server, reconnects by itself, and makes sure that
// nothing typed is lost: every message gets a sequence number and stays queued until its reply
// came; replies are matched first-in, first-out, per socket; unanswered messages are re-sent, in
// order, on the next connection. The page (app.js) only renders the events this class dispatches:
//
//   state    {state, code, reason, retryAt, delayMs, attempt, connection}
//                                                               connection state changed
//   queued   {message}                                          a message was accepted
//   sent     {message}                                          a message went out on a socket
//   requeued {messages}                                         sent, unanswered, socket gone: pending
//   reply    {message, reply, rttMs, instance, connection}      a message was answered (once)
//   hello    {instance, phase, intervalMs, uptimeMs, handoverMs, at, connection}
//                                                               the current socket's server said who it is
//   alive    {instance, phase, intervalMs, uptimeMs, event, at, connection, first}
//                                                               any alive message of the current socket
//                                                               (event: 'hello', 'goaway' or null)
//   handover {phase, from, to, connection, fromConnection, reason}
//                                                               the server asked to move (goaway):
//                                                               phase 'started' (a second socket is
//                                                               being opened), 'moved' (new messages go
//                                                               on it; `to` is null until its hello) or
//                                                               'failed' (the old socket serves on until
//                                                               it closes; then the usual reconnect)
//   dead     {silentMs, limitMs}                                no alive message in time: link closed
//   rejected {text, reason, message}                            a message refused: by send() (too big;
//                                                               no message), or by the server (close
//                                                               1009/1007/1003 while it was the first
//                                                               in flight: `message`, no longer queued)
//
// The handover (issue 13): a draining server sends a goaway notice (an alive message with
// "event":"goaway") and keeps serving that socket for a while. On the notice a second socket is
// opened through the same URL; once it is open, new and queued messages go there, the old socket
// delivers the replies to what it already carries and is closed (1000) once nothing is in flight
// on it. Only what the old socket could not answer (it closed first) is sent again. The state stays
// 'open' throughout; at most two sockets are open at a time. Should the new socket fail, the old
// one serves until it closes, and the usual reconnect follows.
//
// Every way a pod ends (issue 20), and what the client does:
//   close 1012/1001 (a drain, also a short one)    a short random delay (restartMinMs..restartMaxMs)
//   no close frame: 1006 (SIGKILL, OOM, crash)     backoff with full jitter
//   silence: open, but nothing for deadFactor x    a 'dead' event; closed (4000), backoff
//     interval_ms (frozen process, lost node)
//   a handshake not done in connectTimeoutMs       closed (4002), backoff
//     (a frozen server's kernel still accepts TCP)
// In each case what was in flight on that socket is sent again, in order, on the next one. During
// a handover the old socket's end (any of the above) sends what it owed on the new socket, or, if
// that is not open yet, once it opens; only if the new one fails too does the reconnect follow.
// A socket closed with 1012/1001, or asked to move, within quickEndMs of its open is a quick end:
// from the second in a row on, the wait is at least the backoff's for their count, so a server or
// load balancer that does so to every new socket at once gets a new socket at a falling rate, not
// as fast as handshakes go. (A client moved from pod to pod by a rollout, seconds apart, is not
// slowed down; the count is reset as the attempts' is, after stableMs on one socket.) The
// server's refusal of a message (1009: too big for its MAX_MESSAGE_SIZE, which may be below this
// page's limit) drops that one message, with a `rejected` event, instead of sending it again on
// every new socket.
//
// Everything from the outside world is injected (WebSocket constructor, clock and timers, random
// source), so tests drive it with fakes. The clock is performance.now() unless one is given: times
// in events (`retryAt`, `at`) are on it, not on Date.now(). Events carry their data in
// `event.detail`.

import { REFUSED_CODES, RESTART_CODES, fitCloseReason, parseAlive, reverseText, utf8 } from './protocol.js';

/** A browser fires a timer set for longer than this at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Reconnect policy and limits; every field may be overridden in the constructor options. */
export const DEFAULTS = Object.freeze({
  baseDelayMs: 500, // backoff: delay = random(0, min(maxDelayMs, baseDelayMs * 2^attempt))
  maxDelayMs: 30_000,
  stableMs: 30_000, // the attempt counter is reset after this long on one open connection
  quickEndMs: 5_000, // a 1012/1001 or a notice this soon after a socket opened is a quick end (see above)
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
  'open', // connected (also while handing over to a second socket)
  'restarting', // the server closed with 1012/1001; waiting a short random time to reconnect
  'reconnecting', // waiting for the backoff delay (retryAt) to reconnect
  'offline', // the browser says it is offline: not trying until it is online again (or retryNow())
  'stopped', // the server closed with 4xxx, or stop() was called: not trying (see code/reason)
]);

/** The data of an event, in `event.detail` (like CustomEvent, which older Node lacks). */
export class ClientEvent extends Event {
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

/** The upper bound of the backoff delay before reconnect attempt `attempt` (0-based). */
export function backoffCapMs(attempt, { baseDelayMs, maxDelayMs } = DEFAULTS) {
  return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(attempt, 52));
}

/** Inserts `messages` into `list`, both in sequence order, keeping the order. */
function mergeBySeq(list, messages) {
  return [...list, ...messages].sort((a, b) => a.seq - b.seq);
}

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
    // A monotonic clock: a step of the wall clock (a correction after a resume) must not make a
    // link look silent, nor a retry late. `retryAt` and an alive's `at` are on it as well.
    this._now = clock.now ?? (() => performance.now());
    this._setTimeout = clock.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = clock.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this._random = options.random ?? Math.random;
    this._online = options.online ?? true;

    this.state = 'idle';
    this.attempt = 0; // reconnect attempts since the last stable connection
    this._quickEnds = 0; // quick ends in a row (1012s and notices within quickEndMs of an open)
    this.connections = 0; // sockets opened so far; the id of the newest one
    this.instance = null; // the instance of the current connection, once its hello or alive came
    this.lastAlive = null;
    this.closeCode = null;
    this.closeReason = '';
    this.retryAt = null;

    // Sockets, each a record (see _openSocket) with its own messages in flight, first-in first-out:
    this._sock = null; // the current one: new messages go out on it once it is open
    this._next = null; // handing over: the one being opened to replace _sock
    this._old = null; // handed over: the previous one, still delivering its replies; sends nothing
    this._queue = []; // every unanswered message, in sequence order
    this._unsent = []; // the ones not in flight on any socket, in sequence order
    this._nextSeq = 1;
    this._timers = { retry: null, stable: null };
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
    this.attempt = this._quickEnds = 0;
    this.closeCode = null;
    this.closeReason = '';
    if (!this._online) {
      this._setState('offline');
      return;
    }
    this._connect();
  }

  /** Stops trying: closes the sockets; queued messages stay queued for a later start(). */
  stop(reason = 'stopped') {
    this._dropAll(1000, reason);
    this._clearTimer('retry');
    this.closeCode = null;
    this.closeReason = reason;
    this._setState('stopped', { reason });
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
    this._unsent.push(message);
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
      this._dropAll(4001, 'browser offline');
      this._setState('offline');
    } else if (this.state === 'offline') {
      this.attempt = this._quickEnds = 0;
      this._connect();
    }
  }

  /** The page became visible again: when disconnected and waiting to retry, try at once. */
  wake() {
    if (this._online) this.retryNow(); // (never 'offline' while online: going online reconnects)
  }

  /**
   * The user asked to connect now: from a wait to retry, and also while the browser says it is
   * offline (only a hint: a server on this machine is reachable without a network).
   */
  retryNow() {
    if (this.state === 'reconnecting' || this.state === 'restarting' || this.state === 'offline') {
      this._clearTimer('retry');
      this._connect();
    }
  }

  // --- sockets ----------------------------------------------------------------------------------

  /**
   * Opens a socket and returns its record, or null when the browser refuses the URL. Its handlers
   * know the record, so events of a socket given up on (no longer _sock, _next or _old) are ignored.
   */
  _openSocket() {
    this.connections += 1;
    const id = this.connections;
    let ws;
    try {
      ws = new this._WebSocket(this.url);
    } catch (error) {
      this._openError = `cannot connect: ${error?.message ?? error}`;
      return null;
    }
    const sock = {
      ws,
      id,
      open: false,
      openedAt: null, // when it opened (see quickEndMs)
      quickEnd: false, // counted as a quick end (at its notice, or its 1012)
      inFlight: [], // sent on this socket, unanswered, in order
      instance: null,
      lastHeard: 0, // when it last received anything
      deadLimitMs: 0, // silence after which it is dead; set on open
      notice: null, // its goaway notice, once one came
      handedOver: false, // a handover away from it was started
      handover: null, // for a socket opened to hand over to: {from, fromConnection}
      fallback: null, // the close of the socket it replaces, when that one closed first
      timers: { connect: null, watchdog: null, handover: null },
    };
    ws.onopen = () => this._onOpen(sock);
    ws.onmessage = (event) => this._onMessage(sock, event);
    ws.onclose = (event) => this._onClose(sock, event.code, event.reason);
    ws.onerror = () => {}; // always followed by close
    sock.timers.connect = this._setTimeout(() => {
      sock.timers.connect = null;
      if (!sock.open) this._onConnectTimeout(sock);
    }, this.config.connectTimeoutMs);
    return sock;
  }

  _connect() {
    this._clearTimer('retry');
    this.retryAt = null;
    this.instance = null;
    const sock = this._openSocket();
    this._sock = sock;
    if (!sock) {
      // A URL the browser refuses will not get better by retrying.
      this.closeCode = null;
      this.closeReason = this._openError;
      this._setState('stopped', { reason: this._openError });
      return;
    }
    this._setState('connecting');
  }

  _onOpen(sock) {
    if (sock !== this._sock && sock !== this._next) return;
    this._clearSockTimer(sock, 'connect');
    sock.open = true;
    sock.openedAt = this._now();
    sock.lastHeard = this._now();
    sock.deadLimitMs = this._aliveIntervalMs * this.config.deadFactor;
    this._armWatchdog(sock);
    if (sock === this._next) {
      // The handover: the old socket keeps only what it already carries.
      this._next = null;
      this._old = this._sock;
      this._sock = sock;
    }
    this._clearTimer('stable');
    this.instance = sock.instance;
    if (sock.handover) this.lastAlive = null; // the old socket's, not this one's
    if (this.state !== 'open') {
      this.closeCode = null;
      this.closeReason = '';
      this._setState('open', { connection: sock.id });
    }
    this._timers.stable = this._setTimeout(() => {
      this._timers.stable = null;
      if (sock !== this._sock || this.state !== 'open') return;
      this.attempt = 0;
      // Not while a move off it waits out a quick end's delay: that would undo the delay's count.
      if (!sock.handedOver) this._quickEnds = 0;
    }, this.config.stableMs);
    if (sock.handover) {
      this._emit('handover', { phase: 'moved', ...sock.handover, to: sock.instance, connection: sock.id, reason: '' });
    }
    this._flush();
    if (this._old) this._retireIfDone(this._old);
  }

  _onMessage(sock, event) {
    if (!sock.open || (sock !== this._sock && sock !== this._old)) return; // given up on: not ours
    const text = typeof event.data === 'string' ? event.data : null;
    if (text === null) return; // the server sends only text
    const now = this._now();
    sock.lastHeard = now;
    const head = sock.inFlight.length > 0 ? sock.inFlight[0] : null;
    // A reply that happens to look like an alive message (or a hello, or a notice) is still the
    // head's reply.
    if (head && text === reverseText(head.text)) {
      this._answer(sock, text, now);
      return;
    }
    const alive = parseAlive(text);
    if (alive) {
      this._onAlive(sock, alive, now);
      return;
    }
    // Not the reversal we expected (another server mode): replies are still first-in, first-out.
    if (head) this._answer(sock, text, now);
  }

  _onAlive(sock, alive, now) {
    if (alive.intervalMs > 0) {
      sock.deadLimitMs = alive.intervalMs * this.config.deadFactor;
      this._armWatchdog(sock);
    }
    const first = sock.instance === null;
    sock.instance = alive.instance;
    // The old socket's alive messages (and a notice on it) only prove it alive: the page shows the
    // current socket's server.
    if (sock !== this._sock) return;
    if (alive.intervalMs > 0) this._aliveIntervalMs = alive.intervalMs;
    this.instance = alive.instance;
    this.lastAlive = { ...alive, at: now, connection: sock.id, first };
    if (alive.event === 'hello') {
      const { instance, phase, intervalMs, uptimeMs, handoverMs } = alive;
      this._emit('hello', { instance, phase, intervalMs, uptimeMs, handoverMs, at: now, connection: sock.id });
    }
    this._emit('alive', this.lastAlive);
    if (alive.event === 'goaway') this._onNotice(sock, alive);
  }

  /** The server's goaway notice on the current socket: hand over to a new one. */
  _onNotice(sock, notice) {
    if (sock.notice) return; // a second notice on one socket
    sock.notice = notice;
    // While the previous handover's old socket still finishes, this one waits for it to be gone
    // (_afterOldGone), so there are never more than two sockets.
    if (!this._old) this._startHandover(sock);
  }

  _startHandover(from) {
    if (from !== this._sock || !from.open || from.handedOver || this._next || this._old || this.state !== 'open') {
      return;
    }
    from.handedOver = true;
    const delayMs = this._quickEndDelay(from, 0);
    if (delayMs > 0) {
      from.timers.handover = this._setTimeout(() => {
        from.timers.handover = null;
        if (from === this._sock && from.open && !this._next && !this._old) this._openNext(from);
      }, Math.min(delayMs, MAX_TIMER_MS));
      return;
    }
    this._openNext(from);
  }

  /** The handover's second socket, opened now. */
  _openNext(from) {
    const sock = this._openSocket();
    const detail = { from: from.instance, fromConnection: from.id, to: null, connection: this.connections };
    if (!sock) {
      this._emit('handover', { phase: 'failed', ...detail, reason: this._openError });
      return;
    }
    sock.handover = { from: from.instance, fromConnection: from.id };
    this._next = sock;
    this._emit('handover', { phase: 'started', ...detail, reason: '' });
  }

  /** The socket handed over from has answered all it carried: close it; a waiting notice goes on. */
  _retireIfDone(old) {
    if (old !== this._old || old.inFlight.length > 0) return;
    this._old = null;
    this._closeSocket(old, 1000, 'handed over');
    this._afterOldGone();
  }

  _afterOldGone() {
    const sock = this._sock;
    if (sock && sock.notice && !sock.handedOver) this._startHandover(sock);
  }

  _answer(sock, reply, now) {
    const message = sock.inFlight.shift();
    this._queue.splice(this._queue.indexOf(message), 1);
    this._emit('reply', {
      message,
      reply,
      rttMs: now - message.sentAt,
      instance: sock.instance,
      connection: sock.id,
    });
    if (sock === this._old) this._retireIfDone(sock);
  }

  _onClose(sock, code, reason) {
    reason = reason ?? '';
    if (REFUSED_CODES.has(code) && (sock === this._sock || sock === this._old)) {
      this._refuseFirst(sock, code, reason);
    }
    if (sock === this._old) {
      // It closed before answering all it carried: only those go out again, on the current socket.
      this._old = null;
      this._closeSocket(sock);
      this._flush();
      this._afterOldGone();
      return;
    }
    if (sock === this._next) {
      // The new socket failed: the old one serves on; when it closes, the usual reconnect.
      this._next = null;
      this._closeSocket(sock);
      this._handoverFailed(sock, `closed (${code}) before it opened`);
      return;
    }
    if (sock !== this._sock) return;
    this._closeSocket(sock);
    this._sock = null;
    this._clearTimer('stable');
    this.closeCode = code;
    this.closeReason = reason;
    if (code >= 4000 && code <= 4999) {
      // The server refuses this client: retrying would not help; show why.
      this._dropAll(1000, 'refused');
      this._setState('stopped', { code, reason });
      return;
    }
    if (!this._online) {
      this._dropAll(4001, 'browser offline');
      this._setState('offline', { code, reason });
      return;
    }
    if (this._next) {
      this._waitForNext({ code, reason });
      return;
    }
    if (!sock.open && sock.handover) {
      // It was to take over from a socket that closed first (_waitForNext), and never opened:
      // the handover failed, and the reconnect follows that socket's close.
      this._handoverFailed(sock, `closed (${code}) before it opened`);
      this._retryAfterClose(sock.fallback);
      return;
    }
    // Once open, a socket's own close decides, also for one opened by a handover.
    this._retryAfterClose({ code, reason }, sock);
  }

  /** The server closed `sock` refusing the first message in flight on it: that one is dropped. */
  _refuseFirst(sock, code, reason) {
    const message = sock.inFlight.shift();
    if (!message) return;
    this._queue.splice(this._queue.indexOf(message), 1);
    const why = reason ? `: ${reason}` : '';
    this._emit('rejected', { text: message.text, message, reason: `the server refused it (close ${code}${why})` });
  }

  /**
   * The wait after the server sent `sock` away (1012/1001, or a notice): `delayMs`, or, for a
   * quick end, from the second in a row on, at least the backoff's wait for their count. An end
   * that is not quick ends the run. A socket is counted once: its 1012 after its quick notice
   * waits as its notice did.
   */
  _quickEndDelay(sock, delayMs) {
    if (!this._endedQuickly(sock)) {
      if (!sock.quickEnd) this._quickEnds = 0;
      return delayMs;
    }
    if (!sock.quickEnd) {
      sock.quickEnd = true;
      this._quickEnds += 1;
    }
    const before = this._quickEnds - 1; // the quick ends in a row before this socket's
    const backoffMs = before === 0 ? 0 : this._random() * backoffCapMs(before, this.config);
    return Math.max(delayMs, backoffMs);
  }

  /** Whether `sock` ends (or is asked to move) within quickEndMs of its open, or never opened. */
  _endedQuickly(sock) {
    return sock.openedAt === null || this._now() - sock.openedAt < this.config.quickEndMs;
  }

  /**
   * The socket handed over from is gone before the new one opened: what it could not answer waits
   * for the new one. Should that fail too, the reconnect follows the old socket's close.
   */
  _waitForNext(fallback) {
    this._sock = this._next;
    this._next = null;
    this._sock.fallback = fallback;
    this._setState('connecting', { ...fallback, connection: this._sock.id });
  }

  _handoverFailed(sock, reason) {
    this._emit('handover', { phase: 'failed', ...sock.handover, to: null, connection: sock.id, reason });
  }

  /**
   * The path after a close: a short delay after 1012/1001 (longer when `sock`, the socket that
   * closed, ended quickly: see _quickEndDelay), else backoff. (4xxx stopped before.)
   */
  _retryAfterClose({ code, reason }, sock = null) {
    if (RESTART_CODES.has(code)) {
      const { restartMinMs, restartMaxMs } = this.config;
      let delayMs = restartMinMs + this._random() * (restartMaxMs - restartMinMs);
      if (sock) delayMs = this._quickEndDelay(sock, delayMs);
      this._retryIn(delayMs, 'restarting', { code, reason });
      return;
    }
    this._scheduleRetry(code, reason);
  }

  _onConnectTimeout(sock) {
    if (sock === this._next) {
      this._next = null;
      this._closeSocket(sock, 4002, 'connect timeout');
      this._handoverFailed(sock, 'connect timeout');
    } else if (sock === this._sock && this.state === 'connecting') {
      this._closeSocket(sock, 4002, 'connect timeout');
      this._sock = null;
      if (sock.handover) {
        this._handoverFailed(sock, 'connect timeout');
        this._retryAfterClose(sock.fallback);
      } else {
        this._scheduleRetry(null, 'connect timeout');
      }
    }
  }

  /** Backoff with full jitter: random(0, min(cap, base * 2^attempt)), then attempt += 1. */
  _scheduleRetry(code, reason) {
    const delayMs = this._random() * backoffCapMs(this.attempt, this.config);
    this.attempt += 1;
    this._retryIn(delayMs, 'reconnecting', { code, reason });
  }

  _retryIn(delayMs, state, info) {
    this._clearTimer('retry');
    if (!this._online) {
      // A try the user asked for while the browser said offline (retryNow) failed: wait for the
      // network again rather than for a timer, so the 'online' event reconnects at once.
      this._setState('offline', info);
      return;
    }
    this.retryAt = this._now() + delayMs;
    this._timers.retry = this._setTimeout(() => {
      this._timers.retry = null;
      this._connect();
    }, Math.min(delayMs, MAX_TIMER_MS));
    this._setState(state, { ...info, delayMs });
  }

  _armWatchdog(sock) {
    this._clearSockTimer(sock, 'watchdog');
    const due = sock.lastHeard + sock.deadLimitMs - this._now();
    sock.timers.watchdog = this._setTimeout(() => {
      sock.timers.watchdog = null;
      const silentMs = this._now() - sock.lastHeard;
      if (silentMs < sock.deadLimitMs) {
        this._armWatchdog(sock); // heard something since (or the timer ran early)
        return;
      }
      this._onDead(sock, silentMs);
    }, Math.min(Math.max(0, due), MAX_TIMER_MS));
  }

  _onDead(sock, silentMs) {
    if (sock === this._old) {
      // The old socket went silent: like a close, what it carried goes out again.
      this._old = null;
      this._closeSocket(sock, 4000, 'no alive message');
      this._flush();
      this._afterOldGone();
      return;
    }
    if (sock !== this._sock || this.state !== 'open') return;
    this._emit('dead', { silentMs, limitMs: sock.deadLimitMs });
    this._closeSocket(sock, 4000, 'no alive message');
    this._sock = null;
    this._clearTimer('stable');
    if (this._next) {
      this._waitForNext({ code: null, reason: 'no alive message' });
      return;
    }
    this._scheduleRetry(null, 'no alive message');
  }

  /**
   * Done with `sock`: its handlers go (late events are ignored), its timers stop, it is closed
   * with `code` if one is given, and what was in flight on it is unanswered: pending again.
   */
  _closeSocket(sock, code, reason) {
    this._clearSockTimer(sock, 'connect');
    this._clearSockTimer(sock, 'watchdog');
    this._clearSockTimer(sock, 'handover');
    const { ws } = sock;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (code !== undefined) {
      try {
        ws.close(code, fitCloseReason(reason));
      } catch {
        ws.close(); // a code the browser does not let a page send: closed without one
      }
    }
    if (sock.inFlight.length > 0) {
      const messages = sock.inFlight.splice(0);
      this._unsent = mergeBySeq(this._unsent, messages);
      this._emit('requeued', { messages });
    }
  }

  /** Gives up on every socket at once. */
  _dropAll(code, reason) {
    this._clearTimer('stable');
    for (const name of ['_next', '_old', '_sock']) {
      const sock = this[name];
      this[name] = null;
      if (sock) this._closeSocket(sock, code, reason);
    }
  }

  /** Sends what is not in flight on the current socket, in order. */
  _flush() {
    const sock = this._sock;
    while (sock && sock.open && this.state === 'open' && this._unsent.length > 0) {
      // CLOSING (the server's close frame came; the close event has not yet): a send would be
      // dropped (with a console error); the message waits for the next connection instead.
      if (sock.ws.readyState !== 1) return;
      const message = this._unsent[0];
      try {
        sock.ws.send(message.text);
      } catch {
        return; // the socket is closing; its close event re-queues
      }
      this._unsent.shift();
      sock.inFlight.push(message);
      message.sentAt = this._now();
      message.sends += 1;
      this._emit('sent', { message });
    }
  }

  _clearSockTimer(sock, name) {
    if (sock.timers[name] !== null) {
      this._clearTimeout(sock.timers[name]);
      sock.timers[name] = null;
    }
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
