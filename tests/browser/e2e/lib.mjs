// What the browser tests share: real wsdrain processes, a TCP proxy standing in for the load
// balancer, headless Chromium, console watching, a tab that records what the page did, and typing
// into it. The PNG decoder for the screenshot check is png.mjs.
// The test files (*.test.mjs beside this one) run through tests/tiers/browser.sh, which installs
// Chromium and playwright-core, builds the server and kills what a test left running.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
          server.adminPort = Number(m[2]);
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

/**
 * The kubelet's preStop hook: `GET /prestop` on the admin port, left waiting. Resolves with its
 * status once the server answers; call it, await the `prestop` line, then signal.
 */
export function callPrestop(server) {
  return new Promise((done, fail) => {
    http
      .get({ host: '127.0.0.1', port: server.adminPort, path: '/prestop' }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode));
      })
      .on('error', fail);
  });
}

/** SIGTERM: the server drains (1012 to every WebSocket) and must exit 0 within its budget. */
export async function drain(server) {
  server.child.kill('SIGTERM');
  const result = await within(10_000, server.exit, `${server.instance} exit after SIGTERM`);
  assert.deepEqual(result, { code: 0, signal: null }, `${server.instance} exits 0 after a drain`);
}

/** The counts of a server's lifecycle line `event` (`drain_end`, `exit`): {notices, left, ...}. */
export function eventCounts(server, event) {
  const line = server.lines.find((l) => l.includes(` ${event} `));
  assert.ok(line, `${server.instance} logged ${event}`);
  return Object.fromEntries([...line.matchAll(/ (\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

/** The counts of a drained server's `drain_end` line: {notices, left, forced, ...}. */
export const drainEnd = (server) => eventCounts(server, 'drain_end');

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
 * connections. Ends are passed on as they came: an EOF as an EOF (end, not destroy, so nothing
 * written is cut off), a reset as a reset, so the browser sees what a client of a killed pod sees.
 *
 * What the tests steer, each modelling the network or a load balancer that has not caught up:
 * - `delayOpenPipes(ms)`: what the pipes open now carry to the browser arrives `ms` later, in order;
 * - `routeNext(port)`: the next new WebSocket goes to `port` (a pod still in the endpoints);
 * - `hold()` / `release()`: new WebSockets wait at the proxy, not yet connected upstream;
 * - `stall(pipe)`: what the browser sends on that pipe from now on is kept back, never delivered
 *   (bytes a pod never read before it died).
 * The upstream is chosen when the first bytes (the request line) come, as a load balancer that
 * reads the request would. Every pipe is kept in `history` with what happened on it: its request
 * line, its upstream `port`, whether the upstream TCP connect succeeded (`connected`), bytes each
 * way, and how the upstream ended (`upEnd`: 'eof', or the error code such as 'ECONNRESET').
 */
export async function startProxy(upstreamPort) {
  const proxy = { upstream: upstreamPort, accepted: [], pipes: new Set(), history: [], next: [], held: [], holding: false };
  const server = createServer((down) => {
    const pipe = {
      down,
      up: null,
      port: null, // chosen on the first bytes, as a load balancer that reads the request would
      delayMs: 0,
      connected: false,
      request: '', // the first line the browser sent ("GET /ws HTTP/1.1" for a WebSocket)
      toServer: 0,
      fromServer: 0,
      stalled: false,
      stalledBytes: 0,
      upEnd: null,
    };
    proxy.pipes.add(pipe);
    proxy.history.push(pipe);
    // Timers of one delay fire in the order they were set: the byte stream keeps its order.
    const later = (fn) => (pipe.delayMs > 0 ? setTimeout(fn, pipe.delayMs) : fn());
    const early = []; // what the browser sent before the upstream was connected
    const open = () => {
      if (down.destroyed) return;
      const up = (pipe.up = connect({ port: pipe.port, host: '127.0.0.1' }));
      for (const chunk of early.splice(0)) up.write(chunk);
      up.on('connect', () => {
        pipe.connected = true;
      });
      up.on('data', (chunk) => {
        pipe.fromServer += chunk.length;
        later(() => down.write(chunk));
      });
      up.on('end', () => {
        pipe.upEnd ??= 'eof';
      });
      up.on('error', (error) => {
        pipe.upEnd ??= error.code ?? 'error';
        later(() => down.resetAndDestroy());
      });
      up.on('close', () => later(() => down.destroyed || down.end()));
    };
    down.on('data', (chunk) => {
      if (pipe.port === null) {
        pipe.request = chunk.toString('latin1').split('\r\n', 1)[0];
        const webSocket = pipe.request.startsWith('GET /ws ');
        pipe.port = webSocket && proxy.next.length > 0 ? proxy.next.shift() : proxy.upstream;
        proxy.accepted.push(pipe.port);
        if (webSocket && proxy.holding) proxy.held.push(open);
        else open();
      }
      if (pipe.stalled) {
        pipe.stalledBytes += chunk.length;
        return;
      }
      pipe.toServer += chunk.length;
      if (pipe.up) pipe.up.write(chunk);
      else early.push(chunk);
    });
    down.on('error', () => pipe.up?.destroy());
    down.on('close', () => {
      pipe.up?.end();
      proxy.pipes.delete(pipe);
    });
  });
  await new Promise((ready, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ready);
  });
  proxy.port = server.address().port;
  proxy.switchTo = (port) => {
    proxy.upstream = port;
  };
  proxy.routeNext = (port) => {
    proxy.next.push(port);
  };
  proxy.delayOpenPipes = (ms) => {
    for (const pipe of proxy.pipes) pipe.delayMs = ms;
  };
  proxy.hold = () => {
    proxy.holding = true;
  };
  proxy.release = () => {
    proxy.holding = false;
    for (const open of proxy.held.splice(0)) open();
  };
  proxy.stall = (pipe) => {
    pipe.stalled = true;
  };
  /** Every WebSocket pipe so far, in the order they came; `open`: only those open now. */
  proxy.webSockets = ({ open = false } = {}) =>
    proxy.history.filter((p) => p.request.startsWith('GET /ws ') && (!open || proxy.pipes.has(p)));
  proxy.close = () =>
    new Promise((done) => {
      for (const { down, up } of proxy.pipes) {
        down.destroy();
        up?.destroy();
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

/** Polls `check` (sync or async) every 25 ms until it returns a truthy value; fails after `ms`. */
export async function waitUntil(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((done) => setTimeout(done, 25));
  }
}

// --- a tab that records what the page and its client did -----------------------------------------------

/**
 * Records every text the page's state line shows, in `window.__stateTexts`, each once in a row.
 * Runs in the page: pass it to `tab.evaluate` after a load, or to `tab.addInitScript` before one.
 */
export function watchStateTexts() {
  const texts = (window.__stateTexts = []);
  const watch = () => {
    const state = document.getElementById('state');
    const record = () => {
      const text = state.textContent.replace(/\s+/g, ' ').trim();
      if (texts.at(-1) !== text) texts.push(text);
    };
    record();
    new MutationObserver(record).observe(state, { subtree: true, childList: true, characterData: true, attributes: true });
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', watch);
  else watch();
}

/**
 * Opens the page at `url` in a new tab of `context` with recorders in place before the page's own
 * scripts run: every WebSocket the page opens, as the browser sees it (`__rec.sockets`: when it
 * was created and opened, the close the client asked for, the close event), the most sockets in
 * use at once (`peakLive`: neither given up by the client nor closed), and the client's events
 * (replies, each marked `afterMove` when a handover had moved the page; messages sent; re-queued
 * messages; handovers; dead links), all stamped with Date.now(); and the state line's texts
 * (`__stateTexts`, watchStateTexts). Resolves once the page is open and has named `instance`.
 */
export async function openRecordedTab(context, url, instance, tag) {
  const tab = await context.newPage();
  watchConsole(tab, `[${tag}] `);
  await tab.addInitScript(() => {
    const rec = (window.__rec = { sockets: [], peakLive: 0, replies: [], sent: [], requeued: [], handovers: [], dead: [], alive: [] });
    window.WebSocket = class extends window.WebSocket {
      constructor(...args) {
        super(...args);
        const seen = { n: rec.sockets.length + 1, at: Date.now(), openedAt: null, closeCalled: null, closed: null };
        rec.sockets.push(seen);
        this.__seen = seen;
        const live = rec.sockets.filter((s) => s.closeCalled === null && s.closed === null).length;
        rec.peakLive = Math.max(rec.peakLive, live);
        this.addEventListener('open', () => (seen.openedAt = Date.now()));
        this.addEventListener('close', (e) => (seen.closed = { code: e.code, wasClean: e.wasClean, at: Date.now() }));
      }
      close(code, reason) {
        this.__seen.closeCalled ??= { code, reason, at: Date.now() };
        return super.close(code, reason);
      }
    };
    // The page's module has run by now (modules run before DOMContentLoaded); its first socket is
    // still opening, so no reply, handover or dead link was missed.
    document.addEventListener('DOMContentLoaded', () => {
      const { client } = window.wsdrain;
      const on = (type, fn) => client.addEventListener(type, (e) => fn(e.detail));
      const moved = () => rec.handovers.some((h) => h.phase === 'moved');
      on('reply', (d) => rec.replies.push({ seq: d.message.seq, text: d.message.text, sends: d.message.sends, instance: d.instance, connection: d.connection, at: Date.now(), afterMove: moved() }));
      on('sent', (d) => rec.sent.push(d.message.seq));
      on('requeued', (d) => rec.requeued.push(...d.messages.map((m) => m.text)));
      on('handover', (d) => rec.handovers.push({ ...d, at: Date.now() }));
      on('dead', (d) => rec.dead.push({ ...d, at: Date.now() }));
      on('alive', (d) => rec.alive.push({ connection: d.connection, event: d.event, instance: d.instance, at: Date.now() }));
    });
  });
  await tab.addInitScript(watchStateTexts);
  await tab.goto(url);
  await tab.waitForFunction(
    (name) => document.getElementById('state').dataset.state === 'open' && document.getElementById('alive-instance').textContent === name,
    instance,
    { timeout: 10_000, polling: 50 },
  );
  return tab;
}

/** What a recorded tab saw: `__rec`, and the states the page went through (its own trace). */
export const recording = (tab) =>
  tab.evaluate(() => ({ ...window.__rec, states: window.wsdrain.trace.map((t) => ({ state: t.state, code: t.code, at: t.at })) }));

/**
 * Types into the page's form every `everyMs` (as a user would: the input and Enter), `${prefix}
 * ${n} ${mark}`, until stopTyping, `max` messages, or a stop of its own: `whileOpen`, once the
 * page's state is no longer 'open'; `afterMove`, once that many were typed after the page moved
 * (a recorded tab's handovers). The page keeps at most 200 rows, so `max` stays within that.
 */
export async function startTyping(tab, { prefix, mark = '', everyMs = 50, max = 150, whileOpen = false, afterMove = 0 }) {
  assert.ok(max <= 200, 'the page shows at most 200 rows');
  await tab.evaluate(
    ({ prefix, mark, everyMs, max, whileOpen, afterMove }) => {
      if (afterMove > 0 && !window.__rec) throw new Error('startTyping: afterMove needs a recorded tab (openRecordedTab)');
      const typing = (window.__typing = { texts: [], timer: null, stopped: false });
      let typedAfterMove = 0;
      typing.timer = setInterval(() => {
        const moved = afterMove > 0 && typedAfterMove >= afterMove;
        const closed = whileOpen && document.getElementById('state').dataset.state !== 'open';
        if (typing.texts.length >= max || moved || closed) {
          clearInterval(typing.timer);
          typing.stopped = true;
          return;
        }
        if (afterMove > 0 && window.__rec.handovers.some((h) => h.phase === 'moved')) typedAfterMove += 1;
        const text = `${prefix} ${typing.texts.length + 1}${mark ? ` ${mark}` : ''}`;
        typing.texts.push(text);
        document.getElementById('text').value = text;
        document.getElementById('send-form').requestSubmit();
      }, everyMs);
    },
    { prefix, mark, everyMs, max, whileOpen, afterMove },
  );
}

/** Stops the typing; returns every text typed, in order. */
export const stopTyping = (tab) =>
  tab.evaluate(() => {
    clearInterval(window.__typing.timer);
    return window.__typing.texts;
  });

/** Waits until the typing stopped by itself (`max`, `whileOpen`, `afterMove`); returns every text typed. */
export async function typingStopped(tab, timeoutMs) {
  await tab.waitForFunction(() => window.__typing.stopped, null, { timeout: timeoutMs, polling: 50 });
  return stopTyping(tab);
}

/** How many messages the page has sent so far (the 'sent' status or answered), and replies by instance. */
export const counts = (tab) =>
  tab.evaluate(() => {
    const byInstance = {};
    for (const r of window.__rec.replies) byInstance[r.instance] = (byInstance[r.instance] ?? 0) + 1;
    return { typed: window.__typing?.texts.length ?? 0, replies: window.__rec.replies.length, byInstance };
  });

/**
 * Nothing lost, nothing shown twice: waits until every text typed is answered, then checks that the
 * page shows each once, in order, with its own reply, and that the client answered each once.
 * Returns the recording.
 */
export async function assertEachAnsweredOnce(tab, typed) {
  await tab.waitForFunction(
    (n) => {
      const lis = [...document.querySelectorAll('#messages li')];
      return lis.length === n && lis.every((li) => li.dataset.status === 'answered');
    },
    typed.length,
    { timeout: 15_000, polling: 50 },
  );
  const shown = await tab.$$eval('#messages li', (lis) =>
    lis.reverse().map((li) => ({ text: li.querySelector('.text').textContent, reply: li.querySelector('.reply-text').textContent })),
  );
  assert.deepEqual(shown.map((r) => r.text), typed, 'every message shown once, in order');
  for (const row of shown) assert.equal(row.reply, reverse(row.text), `${row.text}: its own reply`);
  const rec = await recording(tab);
  const seqs = rec.replies.map((r) => r.seq);
  assert.equal(new Set(seqs).size, seqs.length, `no reply event twice: ${seqs}`);
  assert.equal(seqs.length, typed.length, 'each message answered once');
  return rec;
}
