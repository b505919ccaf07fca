// One WebSocket of the page's client (client.js): what is in flight on it, what it heard and when,
// and its own timers: it watches itself for silence, and tells a reply from an alive message. The
// client decides what its open, messages, close and silence mean for the connection.

import { fitCloseReason, parseAlive, reverseText } from './protocol.js';
import { Timers } from './timers.js';

export class Socket {
  /**
   * @param {WebSocket} ws  just constructed, not yet open
   * @param {number} id  the client's count of sockets opened, this one included
   * @param {{now: Function, setTimeout: Function, clearTimeout: Function}} clock
   */
  constructor(ws, id, clock) {
    this.ws = ws;
    this.id = id;
    this.open = false;
    this.openedAt = null; // when it opened (see quickEndMs)
    this.quickEnd = false; // counted as a quick end (at its notice, or its 1012)
    this.inFlight = []; // sent on this socket, unanswered, in order
    this.instance = null; // its server, once a hello or alive named it
    this.lastHeard = 0; // when it last received anything
    this.deadLimitMs = 0; // silence after which it is dead; set on open
    this.notice = null; // its goaway notice, once one came
    this.handedOver = false; // a handover away from it was started
    this.handover = null; // for a socket opened to hand over to: {from, fromConnection}
    this.fallback = null; // the close of the socket it replaces, when that one closed first
    this.timers = new Timers(clock, ['connect', 'watchdog', 'handover']);
    this._now = clock.now;
    this._onDead = null;
  }

  /**
   * Opens a WebSocket to `url` (throws as its constructor does, on a URL the browser refuses).
   * `on.open()`, `on.message(text)` and `on.close(code, reason)` get its events until release().
   */
  static connect(WebSocket, url, id, clock, on) {
    const ws = new WebSocket(url);
    ws.onopen = () => on.open();
    ws.onmessage = (event) => {
      if (typeof event.data === 'string') on.message(event.data); // the server sends only text
    };
    ws.onclose = (event) => on.close(event.code, event.reason ?? '');
    ws.onerror = () => {}; // always followed by close
    return new Socket(ws, id, clock);
  }

  /**
   * It opened: watched for silence from now on, before its first alive message (a server frozen
   * right after the handshake sends none). `onDead(silentMs)` once nothing came for `deadLimitMs`.
   */
  opened(deadLimitMs, onDead) {
    this.timers.clear('connect');
    this.open = true;
    this.openedAt = this.lastHeard = this._now();
    this._onDead = onDead;
    this.watchFor(deadLimitMs);
  }

  /** From now on, the silence after which it is dead (an alive message announced its interval). */
  watchFor(deadLimitMs) {
    this.deadLimitMs = deadLimitMs;
    const due = this.lastHeard + this.deadLimitMs - this._now();
    this.timers.set('watchdog', due, () => {
      const silentMs = this._now() - this.lastHeard;
      if (silentMs < this.deadLimitMs) {
        this.watchFor(this.deadLimitMs); // heard something since (or the timer ran early)
        return;
      }
      this._onDead(silentMs);
    });
  }

  /**
   * What `text`, received at `now`, is: the reply to the first message in flight ({reply}), an
   * alive message ({alive}), or nothing to act on (null).
   */
  heard(text, now) {
    this.lastHeard = now;
    const head = this.inFlight.length > 0 ? this.inFlight[0] : null;
    // A reply that happens to look like an alive message (or a hello, or a notice) is still the
    // head's reply.
    if (head && text === reverseText(head.text)) return { reply: text };
    const alive = parseAlive(text);
    if (alive) return { alive };
    // Not the reversal expected (another server mode): replies are still first-in, first-out.
    return head ? { reply: text } : null;
  }

  /** Sends `text`, unless the socket is closing; returns whether it went out. */
  send(text) {
    // CLOSING (the server's close frame came; the close event has not yet): a browser would drop
    // the send (with a console error).
    if (this.ws.readyState !== 1) return false;
    try {
      this.ws.send(text);
      return true;
    } catch {
      return false; // closing after all; its close event follows
    }
  }

  /**
   * Done with it: its handlers go (late events are ignored), its timers stop, it is closed with
   * `code` if one is given. Returns what was in flight on it, now unanswered.
   */
  release(code, reason) {
    this.timers.clearAll();
    const { ws } = this;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (code !== undefined) {
      try {
        ws.close(code, fitCloseReason(reason));
      } catch {
        ws.close(); // a code the browser does not let a page send: closed without one
      }
    }
    return this.inFlight.splice(0);
  }
}
