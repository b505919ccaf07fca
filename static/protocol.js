// What the wsdrain server says and how the page reads it, apart from the client's own policy
// (client.js): the close codes, the alive message (with its hello and goaway notice), the
// reversed reply, the WebSocket URL, a close frame's limit. No state, no DOM.

/** Close codes after which the server asked to come back soon: Service Restart and Going Away. */
export const RESTART_CODES = new Set([1012, 1001]);

/** Close codes by which the server refuses the message it was reading: too big, not UTF-8, not
 * acceptable. Replies come in order, so that is the first one in flight on the socket. */
export const REFUSED_CODES = new Set([1009, 1007, 1003]);

/** The bounds put on a server's `interval_ms`: a tiny one would declare every link dead at once,
 * a huge one would overflow the browser's timers. */
const MIN_ALIVE_INTERVAL_MS = 100;
const MAX_ALIVE_INTERVAL_MS = 86_400_000;

/** A close frame's reason holds at most 123 bytes of UTF-8; close() throws on a longer one. */
const MAX_CLOSE_REASON_BYTES = 123;

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

const nonNegative = (value) => {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : 0;
};

/** A server's interval_ms within [MIN_ALIVE_INTERVAL_MS, MAX_ALIVE_INTERVAL_MS]; 0: none said. */
const aliveInterval = (value) => {
  const n = nonNegative(value);
  return n === 0 ? 0 : Math.min(Math.max(n, MIN_ALIVE_INTERVAL_MS), MAX_ALIVE_INTERVAL_MS);
};

/**
 * Parses an alive message (also a hello or a goaway notice, which are alive messages with an
 * `event` field), or returns null if `text` is not one. `event` is 'hello', 'goaway', another
 * server's word, or null for a plain alive; a hello has `handoverMs`, a goaway `closeInMs`.
 */
export function parseAlive(text) {
  if (!text.startsWith('{') || !text.includes('"alive"')) return null;
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || value.type !== 'alive' || typeof value.instance !== 'string') return null;
  const alive = {
    instance: value.instance,
    phase: String(value.phase ?? ''),
    intervalMs: aliveInterval(value.interval_ms),
    uptimeMs: Number(value.uptime_ms) || 0,
    event: typeof value.event === 'string' ? value.event : null,
  };
  if (alive.event === 'hello') alive.handoverMs = nonNegative(value.handover_ms);
  if (alive.event === 'goaway') alive.closeInMs = nonNegative(value.close_in_ms);
  return alive;
}

export const utf8 = new TextEncoder();

/** `reason` cut to what a close frame holds, at a character boundary. */
export function fitCloseReason(reason = '') {
  let bytes = 0;
  let out = '';
  for (const ch of String(reason)) {
    bytes += utf8.encode(ch).length;
    if (bytes > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
  }
  return out;
}
