// The clock and named timers of the page's client (client.js, socket.js). The clock is injected,
// so tests drive every timer by hand; a browser's own is performance.now() and setTimeout.

/** A browser fires a timer set for longer than this at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The clock to use: `clock`'s functions where given, else the browser's. It is monotonic: a step
 * of the wall clock (a correction after a resume) must not make a link look silent, nor a retry
 * late, so times the client reports (`retryAt`, an alive's `at`) are on it, not on Date.now().
 * @param {{now?: Function, setTimeout?: Function, clearTimeout?: Function}} [clock]
 */
export function makeClock(clock) {
  return {
    now: clock?.now ?? (() => performance.now()),
    setTimeout: clock?.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms)),
    clearTimeout: clock?.clearTimeout ?? ((id) => globalThis.clearTimeout(id)),
  };
}

/** A fixed set of named one-shot timers: setting one replaces it; each is null when not set. */
export class Timers {
  constructor(clock, names) {
    this._clock = clock;
    this._ids = Object.fromEntries(names.map((name) => [name, null]));
  }

  /** Runs `fn` after `ms` (at least 0, at most MAX_TIMER_MS), unless cleared or set again first. */
  set(name, ms, fn) {
    this.clear(name);
    this._ids[name] = this._clock.setTimeout(() => {
      this._ids[name] = null;
      fn();
    }, Math.min(Math.max(0, ms), MAX_TIMER_MS));
  }

  clear(name) {
    if (this._ids[name] !== null) {
      this._clock.clearTimeout(this._ids[name]);
      this._ids[name] = null;
    }
  }

  clearAll() {
    for (const name of Object.keys(this._ids)) this.clear(name);
  }
}
