// The page client's policy (client.js): its limits (what send() refuses), and how long it waits
// before it tries again after a socket ended. It opens, closes and times nothing: the client asks for a delay (telling
// it when the socket opened) and sets its own timer.
//
// Every way a pod ends (issue 20), and the wait that follows:
//   close 1012/1001 (a drain, also a short one)    a short random delay (restartMinMs..restartMaxMs)
//   no close frame: 1006 (SIGKILL, OOM, crash)     backoff with full jitter
//   silence: open, but nothing for deadFactor x    backoff (the client closes it with 4000)
//     interval_ms (frozen process, lost node)
//   a handshake not done in connectTimeoutMs       backoff (the client closes it with 4002)
//     (a frozen server's kernel still accepts TCP)
//
// A socket closed with 1012/1001, or asked to move, within quickEndMs of its open is a quick end:
// from the second in a row on, the wait is at least the backoff's for their count, so a server or
// load balancer that does so to every new socket at once gets a new socket at a falling rate, not
// as fast as handshakes go. (A client moved from pod to pod by a rollout, seconds apart, is not
// slowed down; the count is reset as the attempts' is, after stableMs on one socket.)

/** Reconnect policy and limits; every field may be overridden in the client's constructor options
 * (where an option is null or undefined, its default holds). */
export const DEFAULTS = Object.freeze({
  baseDelayMs: 500, // backoff: delay = random(0, min(maxDelayMs, baseDelayMs * 2^attempt))
  maxDelayMs: 30_000,
  stableMs: 30_000, // the attempt counter is reset after this long on one open connection
  quickEndMs: 5_000, // a 1012/1001 or a notice this soon after a socket opened is a quick end (above)
  restartMinMs: 200, // after close 1012/1001: wait random(restartMinMs, restartMaxMs) first
  restartMaxMs: 3_000,
  deadFactor: 2, // no alive message for deadFactor x interval_ms: the link is dead
  aliveIntervalMs: 5_000, // the server's default ALIVE_INTERVAL: the watchdog's interval until an alive says
  connectTimeoutMs: 10_000, // a socket not open by then is given up and retried
  maxMessageBytes: 65_536, // the server's MAX_MESSAGE_SIZE: larger messages would be closed with 1009
  maxPending: 1_000, // unanswered messages at most: send() refuses more until replies come
});

import { utf8 } from './protocol.js';

/** The upper bound of the backoff delay before reconnect attempt `attempt` (0-based). */
export function backoffCapMs(attempt, { baseDelayMs, maxDelayMs } = DEFAULTS) {
  return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(attempt, 52));
}

export class Policy {
  /**
   * @param {object} config  baseDelayMs, maxDelayMs, restartMinMs, restartMaxMs, quickEndMs
   * @param {Function} random  returns a number in [0, 1)
   */
  constructor(config, random) {
    this.config = config;
    this._random = random;
    this.attempt = 0; // reconnect attempts since the last stable connection
    this.quickEnds = 0; // quick ends in a row (1012s and notices within quickEndMs of an open)
  }

  /**
   * Why send() refuses `text` with `pending` messages unanswered, or null: over the server's
   * message size (it would close the socket with 1009), or too many waiting (kept, they would
   * grow without bound while the server is away).
   */
  refusal(text, pending) {
    const { maxMessageBytes, maxPending } = this.config;
    const bytes = utf8.encode(text).length;
    if (bytes > maxMessageBytes) return `message is ${bytes} bytes; the server takes at most ${maxMessageBytes}`;
    if (pending >= maxPending) return `${pending} messages are waiting for their replies; at most ${maxPending} may`;
    return null;
  }

  /** A fresh start: the user started, or the browser came back online. */
  reset() {
    this.attempt = this.quickEnds = 0;
  }

  /**
   * A socket stayed open for stableMs. Its quick ends stay counted while a move off it waits out
   * their delay (`handedOver`): that would undo the delay's count.
   */
  stable(handedOver) {
    this.attempt = 0;
    if (!handedOver) this.quickEnds = 0;
  }

  /** Backoff with full jitter: random(0, min(cap, base * 2^attempt)), then attempt += 1. */
  backoffMs() {
    const delayMs = this._random() * backoffCapMs(this.attempt, this.config);
    this.attempt += 1;
    return delayMs;
  }

  /** The wait after a close 1012/1001: random(restartMinMs, restartMaxMs). */
  restartMs() {
    const { restartMinMs, restartMaxMs } = this.config;
    return restartMinMs + this._random() * (restartMaxMs - restartMinMs);
  }

  /**
   * The wait after the server sent `sock` away (1012/1001, or a notice) at `now`: `delayMs`, or,
   * for a quick end, from the second in a row on, at least the backoff's wait for their count. An
   * end that is not quick ends the run. A socket is counted once: its 1012 after its quick notice
   * waits as its notice did.
   */
  quickEndDelayMs(sock, delayMs, now) {
    const quick = sock.openedAt === null || now - sock.openedAt < this.config.quickEndMs;
    if (!quick) {
      if (!sock.quickEnd) this.quickEnds = 0;
      return delayMs;
    }
    if (!sock.quickEnd) {
      sock.quickEnd = true;
      this.quickEnds += 1;
    }
    const before = this.quickEnds - 1; // the quick ends in a row before this socket's
    const backoffMs = before === 0 ? 0 : this._random() * backoffCapMs(before, this.config);
    return Math.max(delayMs, backoffMs);
  }
}
