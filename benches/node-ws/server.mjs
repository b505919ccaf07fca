// A benchmark peer on Node.js and the ws package (pinned in package-lock.json): the same
// reverse-echo service as wsdrain, so that benches/run.sh can compare the two on the same load.
//
// - text messages are answered with the text reversed by Unicode scalar values, on the bytes
//   (UTF-8 sequences move whole, as in wsdrain), without decoding to a JS string; ws has
//   validated the UTF-8 (1007 otherwise), with node's buffer.isUtf8;
// - binary messages are refused with close 1003, as wsdrain does;
// - no compression (perMessageDeflate off), messages up to 64 KiB (wsdrain's MAX_MESSAGE_SIZE;
//   bigger: close 1009); no pings of its own and no idle timeout (ws has neither by default);
// - an optional alive timer, for the fan-out comparison: every ALIVE_MS one small text message
//   starting with {"type":"alive" (the loadgen counts those) to every open client, the loop over
//   wss.clients of ws's own broadcast example, with the frame's payload made once per tick.
//
// No bufferutil or utf-8-validate: node >= 18.14 has buffer.isUtf8, which ws uses instead of
// utf-8-validate; bufferutil would only unmask payloads of 32 B and more natively.
//
// Usage: node server.mjs [--port PORT] [--alive-ms MS]   (0 = any free port; 0 = no alive)
// Prints "listening 127.0.0.1:PORT" when ready.

import { isAscii } from "node:buffer";
import { WebSocketServer } from "ws";

function usage() {
  process.stderr.write("usage: node server.mjs [--port PORT] [--alive-ms MS]\n");
  process.exit(2);
}

let port = 0;
let aliveMs = 0;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const value = Number(args[i + 1]);
  if (args[i + 1] === undefined || !Number.isInteger(value) || value < 0) usage();
  if (args[i] === "--port" && value <= 65535) port = value;
  else if (args[i] === "--alive-ms") aliveMs = value;
  else usage();
}

// `data` is a buffer ws made for this message and does not use again: ASCII is reversed in
// place; otherwise each UTF-8 sequence (by its lead byte) is copied to its mirrored place.
function reverseScalars(data) {
  if (isAscii(data)) return data.reverse();
  const n = data.length;
  const out = Buffer.allocUnsafe(n);
  let i = 0;
  while (i < n) {
    const b = data[i];
    let len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    if (len > n - i) len = n - i;
    const at = n - i - len;
    for (let k = 0; k < len; k++) out[at + k] = data[i + k];
    i += len;
  }
  return out;
}

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  maxPayload: 64 * 1024,
  perMessageDeflate: false,
  clientTracking: true,
});

wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (isBinary) {
      ws.close(1003, "binary messages are not accepted");
      return;
    }
    ws.send(reverseScalars(data), { binary: false });
  });
  ws.on("error", () => {}); // a reset client: ws closes the socket; nothing to log
});

wss.on("listening", () => {
  process.stdout.write(`listening 127.0.0.1:${wss.address().port}\n`);
});

wss.on("error", (e) => {
  process.stderr.write(`node-ws: ${e.message}\n`);
  process.exit(1);
});

if (aliveMs > 0) {
  let tick = 0;
  setInterval(() => {
    tick++;
    const text = Buffer.from(
      `{"type":"alive","instance":"node-ws","phase":"serving","interval_ms":${aliveMs},"tick":${tick}}`,
    );
    for (const client of wss.clients) {
      if (client.readyState === 1) client.send(text, { binary: false });
    }
  }, aliveMs);
}
