// What the browser tests share: real wsdrain processes, a TCP proxy standing in for the load
// balancer, headless Chromium, console watching, and a PNG decoder for the screenshot check.
// The test files (*.test.mjs beside this one) run through tests/tiers/browser.sh, which installs
// Chromium and playwright-core, builds the server and kills what a test left running.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SERVER = process.env.WSDRAIN_BIN ?? join(ROOT, 'target/release/wsdrain');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'tests/artifacts');
const PIDFILE = process.env.WSDRAIN_PIDFILE; // the tier kills what is listed here on exit
const ALLOWED_CONSOLE_ERROR = /^WebSocket connection to '[^']*' failed/;

mkdirSync(ARTIFACTS, { recursive: true });
const serverLog = [];
export const log = (line) => serverLog.push(`${new Date().toISOString()} ${line}`);

// --- servers -----------------------------------------------------------------------------------------

export const servers = new Set();

// HANDOVER_TIMEOUT of the servers restarted on one port: their goaway notice cannot be followed
// (the draining server's listener is closed and no second one shares the port), so the page keeps
// the old socket until the 1012 that comes this long after the notice. Kept short: it adds to
// every drain of those steps.
const SAME_PORT_HANDOVER = '2s';

/** Starts wsdrain; resolves once it logged its listening line. */
export function startServer({ instance, port = 0, env = {} }) {
  const child = spawn(SERVER, [], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      STATIC_DIR: 'static',
      BIND: '127.0.0.1',
      ADMIN_BIND: '127.0.0.1',
      PORT: String(port),
      ADMIN_PORT: '0',
      INSTANCE_ID: instance,
      ALIVE_INTERVAL: '1s',
      DRAIN_WINDOW: '1s',
      CLOSE_TIMEOUT: '1s',
      HANDOVER_TIMEOUT: SAME_PORT_HANDOVER,
      RUST_LOG: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (PIDFILE) appendFileSync(PIDFILE, `${child.pid}\n`);
  const server = { child, instance, port: null, exit: null, lines: [] };
  servers.add(server);
  server.exit = new Promise((done) => {
    child.on('exit', (code, signal) => {
      servers.delete(server);
      log(`[${instance}] exited code=${code} signal=${signal}`);
      done({ code, signal });
    });
  });
  return new Promise((ready, fail) => {
    const timer = setTimeout(() => fail(new Error(`${instance}: no listening line within 10 s`)), 10_000);
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        log(`[${instance}] ${line}`);
        server.lines.push(line);
        const m = line.match(/listening public=127\.0\.0\.1:(\d+) admin=127\.0\.0\.1:(\d+)/);
        if (m && server.port === null) {
          server.port = Number(m[1]);
          clearTimeout(timer);
          ready(server);
        }
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${instance} exited with ${code} before listening`));
    });
  });
}

/** SIGTERM: the server drains (1012 to every WebSocket) and must exit 0 within its budget. */
export async function drain(server) {
  server.child.kill('SIGTERM');
  const result = await within(10_000, server.exit, `${server.instance} exit after SIGTERM`);
  assert.deepEqual(result, { code: 0, signal: null }, `${server.instance} exits 0 after a drain`);
}

/** The counts of a drained server's `drain_end` line: {notices, left, forced, ...}. */
export function drainEnd(server) {
  const line = server.lines.find((l) => / drain_end /.test(l));
  assert.ok(line, `${server.instance} logged drain_end`);
  return Object.fromEntries([...line.matchAll(/ (\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

export function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A TCP proxy standing in for the load balancer in front of two pods, so the page has one address:
 * each new connection goes to the current upstream; `switchTo` changes it for new connections only
 * and leaves the pipes already open alone, as a pod taken out of the endpoints keeps its
 * connections. Ends are passed on (end, not destroy), so nothing written is cut off.
 * `delayOpenPipes(ms)`: what the pipes open now carry to the browser arrives `ms` later, in order.
 */
export async function startProxy(upstreamPort) {
  const proxy = { upstream: upstreamPort, accepted: [], pipes: new Set() };
  const server = createServer((down) => {
    const port = proxy.upstream;
    proxy.accepted.push(port);
    const up = connect({ port, host: '127.0.0.1' });
    const pipe = { down, up, delayMs: 0 };
    proxy.pipes.add(pipe);
    // Timers of one delay fire in the order they were set: the byte stream keeps its order.
    const later = (fn) => (pipe.delayMs > 0 ? setTimeout(fn, pipe.delayMs) : fn());
    down.pipe(up);
    up.on('data', (chunk) => later(() => down.write(chunk)));
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.on('close', () => {
      up.end();
      proxy.pipes.delete(pipe);
    });
    up.on('close', () => later(() => down.end()));
  });
  await new Promise((ready, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ready);
  });
  proxy.port = server.address().port;
  proxy.switchTo = (port) => {
    proxy.upstream = port;
  };
  proxy.delayOpenPipes = (ms) => {
    for (const pipe of proxy.pipes) pipe.delayMs = ms;
  };
  proxy.close = () =>
    new Promise((done) => {
      for (const { down, up } of proxy.pipes) {
        down.destroy();
        up.destroy();
      }
      server.close(done);
    });
  return proxy;
}

// --- browser -----------------------------------------------------------------------------------------

/** Headless Debian Chromium with a profile of its own under BROWSER_TMP (the tier's temp dir). */
export async function launchBrowser() {
  const userDataDir = mkdtempSync(join(process.env.BROWSER_TMP ?? tmpdir(), 'wsdrain-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 900, height: 900 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  return context;
}

/** Console lines of the pages watched; errors but the browser's failed-connection lines are unexpected. */
export const consoleLines = [];
export const unexpectedConsole = [];

export function watchConsole(p, tag) {
  p.on('console', (msg) => {
    const line = `${tag}${msg.type()}: ${msg.text()}`;
    consoleLines.push(line);
    if (msg.type() === 'error' && !ALLOWED_CONSOLE_ERROR.test(msg.text())) unexpectedConsole.push(line);
  });
  p.on('pageerror', (error) => {
    consoleLines.push(`${tag}pageerror: ${error.message}`);
    unexpectedConsole.push(`${tag}pageerror: ${error.message}`);
  });
  p.on('requestfailed', (request) => {
    if (!request.url().includes('/ws')) unexpectedConsole.push(`${tag}request failed: ${request.url()}`);
  });
}

/** After a file's tests: kills its servers still running, writes its server and console logs. */
export async function finish(name, context) {
  try {
    await context?.close();
  } finally {
    for (const server of servers) server.child.kill('SIGKILL');
    writeFileSync(join(ARTIFACTS, `browser-${name}-servers.log`), serverLog.join('\n') + '\n');
    writeFileSync(join(ARTIFACTS, `browser-${name}-console.log`), consoleLines.join('\n') + '\n');
  }
}

export const reverse = (text) => Array.from(text).reverse().join('');

// --- PNG decoding (8-bit RGB/RGBA, not interlaced: what Chromium writes) --------------------------------

export function decodePng(buf) {
  assert.equal(buf.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'PNG signature');
  let offset = 8;
  let header;
  const idat = [];
  while (offset < buf.length) {
    const length = buf.readUInt32BE(offset);
    const type = buf.toString('latin1', offset + 4, offset + 8);
    const data = buf.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      header = {
        width: data.readUInt32BE(0),
        height: data.readUInt32BE(4),
        depth: data[8],
        colourType: data[9],
        interlace: data[12],
      };
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    offset += 12 + length;
  }
  assert.ok(header, 'IHDR');
  assert.equal(header.depth, 8);
  assert.equal(header.interlace, 0);
  const channels = { 2: 3, 6: 4 }[header.colourType];
  assert.ok(channels, `colour type ${header.colourType}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = header.width * channels;
  const pixels = Buffer.alloc(stride * header.height);
  for (let y = 0; y < header.height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : Buffer.alloc(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels] : 0;
      const b = prev[x];
      const c = x >= channels ? prev[x - channels] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[x] = v & 0xff;
    }
  }
  return { ...header, channels, pixels };
}

export function distinctColours({ pixels, channels }) {
  const seen = new Set();
  for (let i = 0; i < pixels.length; i += channels) {
    seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
  }
  return seen.size;
}
