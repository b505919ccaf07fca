// The connection and queue logic of the wsdrain page, without any DOM access.
//
// `WsClient` keeps one WebSocket open to the server, reconnects by itself, and makes sure that
// nothing typed is lost: every message gets a sequence number and stays queued until its reply
// came; replies are matched first-in, first-out, per socket; unanswered messages are re-sent, in
// order, on the next connection. The page (app.js) only renders the events it dispatches.
//
// The handover (issue 13): a draining server sends a goaway notice (an alive message with
// "event":"goaway") and keeps serving that socket for a while. On the notice a second socket is
// opened through the same URL; once it is open, new and queued messages go there, the old socket
// delivers the replies to what it already carries and is closed (1000) once nothing is in flight
// on it. Only what the old socket could not answer (it closed first) is sent again. The state stays
// 'open' throughout; at most two sockets are open at a time. Should the new socket fail, the old
// one serves until it closes, and the usual reconnect follows.
//
// Every way a pod ends (issue 20; the wait after each is policy.js's): what was in flight on the
// socket that ended is sent again, in order, on the next one. During a handover the old socket's
// end sends what it owed on the new socket, once that is open; only if the new one fails too does
// the reconnect follow. A message the server refused (close 1009: over its MAX_MESSAGE_SIZE, which
// may be below this page's limit) is dropped with a `rejected` event, not sent on every new socket.
//
// The parts, each a module of its own: what the server says (protocol.js), what the client tells
// the page (events.js), its defaults and how long it waits before a retry (policy.js), one
// socket's record (socket.js), the messages not yet answered (queue.js), the clock and timers
// (timers.js); what a page imports from the parts is exported here as well. Everything from the
// outside world is injected (WebSocket constructor, clock and timers, random source), so tests
// drive it with fakes.

import { REFUSED_CODES, RESTART_CODES } from './protocol.js';
import { ClientEvent } from './events.js';
import { MessageQueue } from './queue.js';
import { DEFAULTS, Policy } from './policy.js';
import { Socket } from './socket.js';
import { Timers, makeClock } from './timers.js';
export { ClientEvent, STATES } from './events.js';
export { DEFAULTS, backoffCapMs } from './policy.js';

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
    this.config = Object.fromEntries(Object.entries(DEFAULTS).map(([key, value]) => [key, options[key] ?? value]));
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._clock = makeClock(options.clock);
    this._now = this._clock.now;
    this._policy = new Policy(this.config, options.random ?? Math.random);
    this._online = options.online ?? true;

    this.state = 'idle';
    this.connections = 0; // sockets opened so far; the id of the newest one
    this.instance = null; // the instance of the current connection, once its hello or alive came
    this.lastAlive = null;
    this.closeCode = null;
    this.closeReason = '';
    this.retryAt = null;

    // Sockets (socket.js), each with its own messages in flight, first-in first-out:
    this._sock = null; // the current one: new messages go out on it once it is open
    this._next = null; // handing over: the one being opened to replace _sock
    this._old = null; // handed over: the previous one, still delivering its replies; sends nothing
    this._queue = new MessageQueue();
    this._timers = new Timers(this._clock, ['retry', 'stable']);
    // The latest interval_ms an alive message announced, kept across connections: a new socket is
    // watched from its open on, before its own first alive.
    this._aliveIntervalMs = this.config.aliveIntervalMs;
  }

  /** Unanswered messages, in order (the first ones may be waiting for their reply). */
  get pending() {
    return this._queue.pending;
  }

  /** Reconnect attempts since the last stable connection. */
  get attempt() {
    return this._policy.attempt;
  }

  /** Starts connecting (or waits for `online` when the browser is offline). */
  start() {
    if (this.state !== 'idle' && this.state !== 'stopped') return;
    this._policy.reset();
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
    this._timers.clear('retry');
    this.closeCode = null;
    this.closeReason = reason;
    this._setState('stopped', { reason });
  }

  /**
   * Queues `text` and sends it when connected. Returns the message ({seq, text, queuedAt, sentAt,
   * sends}), or null for empty text, and for text the policy refuses (a `rejected` event): over the
   * server's message size, or beyond maxPending messages unanswered.
   */
  send(text) {
    text = String(text);
    if (text.length === 0) return null;
    const reason = this._policy.refusal(text, this._queue.size);
    if (reason) {
      this._emit('rejected', { text, reason });
      return null;
    }
    const message = this._queue.add(text, this._now());
    this._emit('queued', { message });
    if (this.state === 'open') this._flush();
    return message;
  }

  /** The browser went online or offline (the window's `online` / `offline` events). */
  setOnline(online) {
    this._online = online;
    if (!online) {
      if (this.state === 'stopped' || this.state === 'idle') return;
      this._timers.clear('retry');
      this._dropAll(4001, 'browser offline');
      this._setState('offline');
    } else if (this.state === 'offline') {
      this._policy.reset();
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
      this._timers.clear('retry');
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
    let sock;
    try {
      sock = Socket.connect(this._WebSocket, this.url, this.connections, this._clock, {
        open: () => this._onOpen(sock),
        message: (text) => this._onMessage(sock, text),
        close: (code, reason) => this._onClose(sock, code, reason),
      });
    } catch (error) {
      this._openError = `cannot connect: ${error?.message ?? error}`;
      return null;
    }
    sock.timers.set('connect', this.config.connectTimeoutMs, () => {
      if (!sock.open) this._onConnectTimeout(sock);
    });
    return sock;
  }

  _connect() {
    this._timers.clear('retry');
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
    sock.opened(this._aliveIntervalMs * this.config.deadFactor, (silentMs) => this._onDead(sock, silentMs));
    if (sock === this._next) {
      // The handover: the old socket keeps only what it already carries.
      this._next = null;
      this._old = this._sock;
      this._sock = sock;
    }
    this.instance = sock.instance;
    if (sock.handover) this.lastAlive = null; // the old socket's, not this one's
    if (this.state !== 'open') {
      this.closeCode = null;
      this.closeReason = '';
      this._setState('open', { connection: sock.id });
    }
    this._timers.set('stable', this.config.stableMs, () => {
      if (sock === this._sock && this.state === 'open') this._policy.stable(sock.handedOver);
    });
    if (sock.handover) {
      this._emit('handover', { phase: 'moved', ...sock.handover, to: sock.instance, connection: sock.id, reason: '' });
    }
    this._flush();
    if (this._old) this._retireIfDone(this._old);
  }

  _onMessage(sock, text) {
    if (!sock.open || (sock !== this._sock && sock !== this._old)) return; // given up on: not ours
    const now = this._now();
    const heard = sock.heard(text, now);
    if (heard?.alive) this._onAlive(sock, heard.alive, now);
    else if (heard) this._answer(sock, heard.reply, now);
  }

  _onAlive(sock, alive, now) {
    if (alive.intervalMs > 0) sock.watchFor(alive.intervalMs * this.config.deadFactor);
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
    // (_dropOld), so there are never more than two sockets.
    if (!this._old) this._startHandover(sock);
  }

  _startHandover(from) {
    if (from !== this._sock || !from.open || from.handedOver || this._next || this._old || this.state !== 'open') {
      return;
    }
    from.handedOver = true;
    const delayMs = this._policy.quickEndDelayMs(from, 0, this._now());
    if (delayMs > 0) {
      from.timers.set('handover', delayMs, () => {
        if (from === this._sock && from.open && !this._next && !this._old) this._openNext(from);
      });
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

  /** The socket handed over from has answered all it carried: close it. */
  _retireIfDone(old) {
    if (old === this._old && old.inFlight.length === 0) this._dropOld(1000, 'handed over');
  }

  /**
   * Done with the socket handed over from: what it could not answer (it closed, or went silent)
   * goes out again, on the current socket; a notice that waited for it goes on.
   */
  _dropOld(code, reason) {
    const old = this._old;
    this._old = null;
    this._closeSocket(old, code, reason);
    this._flush();
    const sock = this._sock;
    if (sock && sock.notice && !sock.handedOver) this._startHandover(sock);
  }

  _answer(sock, reply, now) {
    const message = sock.inFlight.shift();
    this._queue.remove(message);
    const rttMs = now - message.sentAt;
    this._emit('reply', { message, reply, rttMs, instance: sock.instance, connection: sock.id });
    if (sock === this._old) this._retireIfDone(sock);
  }

  _onClose(sock, code, reason) {
    if (REFUSED_CODES.has(code) && (sock === this._sock || sock === this._old)) {
      this._refuseFirst(sock, code, reason);
    }
    if (sock === this._old) {
      this._dropOld();
      return;
    }
    if (sock === this._next) {
      this._dropNext(`closed (${code}) before it opened`);
      return;
    }
    if (sock !== this._sock) return;
    this._dropCurrent();
    this.closeCode = code;
    this.closeReason = reason;
    if (code >= 4000 && code <= 4999) {
      // The server refuses this client: retrying would not help; show why.
      this._dropAll(1000, 'refused');
      this._setState('stopped', { code, reason });
    } else if (!this._online) {
      this._dropAll(4001, 'browser offline');
      this._setState('offline', { code, reason });
    } else {
      this._afterCurrentEnded(sock, { code, reason }, `closed (${code}) before it opened`);
    }
  }

  /**
   * What follows the end of `sock`, the current socket until then (`end`: {code, reason}).
   * `failure` is the handover's, should it have been opened to hand over to and never opened.
   */
  _afterCurrentEnded(sock, end, failure = end.reason) {
    if (this._next) {
      this._waitForNext(end);
    } else if (!sock.open && sock.handover) {
      // It was to take over from a socket that ended first (_waitForNext), and never opened: the
      // handover failed, and the reconnect follows that socket's end.
      this._handoverFailed(sock, failure);
      this._retryAfterClose(sock.fallback);
    } else {
      // Once open, a socket's own end decides, also for one opened by a handover.
      this._retryAfterClose(end, sock);
    }
  }

  /** The server closed `sock` refusing the first message in flight on it: that one is dropped. */
  _refuseFirst(sock, code, reason) {
    const message = sock.inFlight.shift();
    if (!message) return;
    this._queue.remove(message);
    const why = reason ? `: ${reason}` : '';
    this._emit('rejected', { text: message.text, message, reason: `the server refused it (close ${code}${why})` });
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
   * The wait after a socket's end: a short delay after 1012/1001 (longer when `sock`, the socket
   * that closed, ended quickly), else backoff. (4xxx stopped before.)
   */
  _retryAfterClose({ code, reason }, sock = null) {
    if (RESTART_CODES.has(code)) {
      let delayMs = this._policy.restartMs();
      if (sock) delayMs = this._policy.quickEndDelayMs(sock, delayMs, this._now());
      this._retryIn(delayMs, 'restarting', { code, reason });
    } else {
      this._retryIn(this._policy.backoffMs(), 'reconnecting', { code, reason });
    }
  }

  _onConnectTimeout(sock) {
    if (sock === this._next) {
      this._dropNext('connect timeout', 4002);
    } else if (sock === this._sock && this.state === 'connecting') {
      this._dropCurrent(4002, 'connect timeout');
      this._afterCurrentEnded(sock, { code: null, reason: 'connect timeout' });
    }
  }

  _retryIn(delayMs, state, info) {
    this._timers.clear('retry');
    if (!this._online) {
      // A try the user asked for while the browser said offline (retryNow) failed: wait for the
      // network again rather than for a timer, so the 'online' event reconnects at once.
      this._setState('offline', info);
      return;
    }
    this.retryAt = this._now() + delayMs;
    this._timers.set('retry', delayMs, () => this._connect());
    this._setState(state, { ...info, delayMs });
  }

  _onDead(sock, silentMs) {
    if (sock === this._old) {
      this._dropOld(4000, 'no alive message');
      return;
    }
    if (sock !== this._sock || this.state !== 'open') return;
    this._emit('dead', { silentMs, limitMs: sock.deadLimitMs });
    this._dropCurrent(4000, 'no alive message');
    this._afterCurrentEnded(sock, { code: null, reason: 'no alive message' });
  }

  /**
   * Done with `sock`: its handlers go (late events are ignored), its timers stop, it is closed
   * with `code` if one is given, and what was in flight on it is unanswered: pending again.
   */
  _closeSocket(sock, code, reason) {
    const messages = sock.release(code, reason);
    if (messages.length > 0) {
      this._queue.requeue(messages);
      this._emit('requeued', { messages });
    }
  }

  /** The handover's new socket failed (closed with `code` if given): the old one serves on. */
  _dropNext(failure, code) {
    const sock = this._next;
    this._next = null;
    this._closeSocket(sock, code, failure);
    this._handoverFailed(sock, failure);
  }

  /** Done with the current socket: closed with `code` if one is given. */
  _dropCurrent(code, reason) {
    const sock = this._sock;
    this._sock = null;
    this._timers.clear('stable');
    this._closeSocket(sock, code, reason);
  }

  /** Gives up on every socket at once. */
  _dropAll(code, reason) {
    this._timers.clear('stable');
    for (const name of ['_next', '_old', '_sock']) {
      const sock = this[name];
      this[name] = null;
      if (sock) this._closeSocket(sock, code, reason);
    }
  }

  /** Sends what is not in flight on the current socket, in order. */
  _flush() {
    const sock = this._sock;
    let message;
    while (sock && sock.open && this.state === 'open' && (message = this._queue.nextUnsent())) {
      if (!sock.send(message.text)) return; // closing: the message waits for the next socket
      this._queue.takeNextUnsent(this._now());
      sock.inFlight.push(message);
      this._emit('sent', { message });
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
