// Browser tests of the page in headless Chromium against real wsdrain processes.
// Run from the repo root through tests/tiers/browser.sh (it installs Chromium and playwright-core,
// builds the server and cleans up), or directly: node tests/browser/e2e.mjs
//
// One page stays open through the whole run, as a user's tab would:
//   1. it connects and shows a reversed multi-byte reply;
//   2. alive messages appear with the instance;
//   3. server A drains (SIGTERM: goaway notice, then 1012), server B starts on the same port: the
//      page's handover fails (nothing else listens there), so it shows "server restarting" at the
//      1012, reconnects by itself, and everything typed (also during the outage) is answered
//      exactly once;
//   4. a longer outage shows the "reconnecting in N s" countdown, and the page still recovers;
//   5. the tab becoming visible again ends a waiting reconnect at once;
//   6. a handover: a second tab loads the page through a TCP proxy (the load balancer) from server
//      E; server F starts, the proxy sends new connections to F, E gets SIGTERM and sends its
//      goaway notice: the page moves to F while typing, never leaves "open", re-sends nothing;
//   7. a screenshot of the page in a known state, checked to be non-blank;
//   and through all of it no console errors but the browser's own failed-connection lines.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER = process.env.WSDRAIN_BIN ?? join(ROOT, 'target/release/wsdrain');
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'tests/artifacts');
const PIDFILE = process.env.WSDRAIN_PIDFILE; // the tier kills what is listed here on exit
const ALLOWED_CONSOLE_ERROR = /^WebSocket connection to '[^']*' failed/;

mkdirSync(ARTIFACTS, { recursive: true });
const serverLog = [];
const log = (line) => serverLog.push(`${new Date().toISOString()} ${line}`);

// --- servers -----------------------------------------------------------------------------------------

const servers = new Set();

// HANDOVER_TIMEOUT of the servers restarted on one port: their goaway notice cannot be followed
// (the draining server's listener is closed and no second one shares the port), so the page keeps
// the old socket until the 1012 that comes this long after the notice. Kept short: it adds to
// every drain of those steps.
const SAME_PORT_HANDOVER = '2s';

/** Starts wsdrain; resolves once it logged its listening line. */
function startServer({ instance, port = 0, env = {} }) {
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
async function drain(server) {
  server.child.kill('SIGTERM');
  const result = await within(10_000, server.exit, `${server.instance} exit after SIGTERM`);
  assert.deepEqual(result, { code: 0, signal: null }, `${server.instance} exits 0 after a drain`);
}

/** The counts of a drained server's `drain_end` line: {notices, left, forced, ...}. */
function drainEnd(server) {
  const line = server.lines.find((l) => / drain_end /.test(l));
  assert.ok(line, `${server.instance} logged drain_end`);
  return Object.fromEntries([...line.matchAll(/ (\w+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

function within(ms, promise, what) {
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
async function startProxy(upstreamPort) {
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

let context;
let page;
let serverA;
let serverB;
let serverC;
const consoleLines = [];
const unexpectedConsole = [];
const sentTexts = []; // everything typed into the page, in order

before(async () => {
  serverA = await startServer({ instance: 'pod-a' });
  const userDataDir = mkdtempSync(join(process.env.BROWSER_TMP ?? tmpdir(), 'wsdrain-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
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
  page = context.pages()[0] ?? (await context.newPage());
  watchConsole(page, '');
});

/** Collects a page's console lines; errors but the browser's failed-connection lines are unexpected. */
function watchConsole(p, tag) {
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

after(async () => {
  try {
    if (page) {
      const trace = await page.evaluate(() => window.wsdrain?.trace ?? []).catch(() => []);
      writeFileSync(join(ARTIFACTS, 'browser-trace.json'), JSON.stringify(trace, null, 1));
    }
    await context?.close();
  } finally {
    for (const server of servers) server.child.kill('SIGKILL');
    writeFileSync(join(ARTIFACTS, 'browser-servers.log'), serverLog.join('\n') + '\n');
    writeFileSync(join(ARTIFACTS, 'browser-console.log'), consoleLines.join('\n') + '\n');
  }
});

// --- page helpers --------------------------------------------------------------------------------------

const reverse = (text) => Array.from(text).reverse().join('');

async function type(text) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
  sentTexts.push(text);
}

async function waitForState(state, timeout = 15_000) {
  await page.waitForFunction((s) => document.getElementById('state').dataset.state === s, state, {
    timeout,
    polling: 50,
  });
}

/** Every row of the message list, oldest first. */
function rows() {
  return page.$$eval('#messages li', (lis) =>
    lis.reverse().map((li) => ({
      seq: Number(li.dataset.seq),
      status: li.dataset.status,
      text: li.querySelector('.text').textContent,
      reply: li.querySelector('.reply-text').textContent,
      meta: li.querySelector('.meta').textContent,
    })),
  );
}

async function waitAllAnswered(timeout = 15_000) {
  await page.waitForFunction(
    (n) => {
      const lis = [...document.querySelectorAll('#messages li')];
      return lis.length === n && lis.every((li) => li.dataset.status === 'answered');
    },
    sentTexts.length,
    { timeout, polling: 50 },
  );
}

/** Each text typed is shown exactly once, in order, with its reversed reply; no reply came twice. */
async function assertNothingLostOrDoubled() {
  const shown = await rows();
  assert.deepEqual(shown.map((r) => r.text), sentTexts, 'every message shown once, in order');
  for (const row of shown) {
    assert.equal(row.status, 'answered', `#${row.seq} answered`);
    assert.equal(row.reply, reverse(row.text), `#${row.seq} has its own reply`);
  }
  const replies = await page.evaluate(() => window.__replySeqs);
  assert.equal(new Set(replies).size, replies.length, `no reply event twice: ${replies}`);
  assert.equal(replies.length, sentTexts.length);
}

/** The instance shown on the rows whose text is in `texts`. */
async function instancesOf(texts) {
  const shown = await rows();
  return shown.filter((r) => texts.includes(r.text)).map((r) => r.meta.match(/served by (\S+)/)?.[1]);
}

// --- the tests -----------------------------------------------------------------------------------------

test('the page connects and shows a reversed multi-byte reply', async () => {
  await page.goto(`http://127.0.0.1:${serverA.port}/`);
  await page.evaluate(() => {
    window.__replySeqs = [];
    window.wsdrain.client.addEventListener('reply', (e) => window.__replySeqs.push(e.detail.message.seq));
    window.__dead = [];
    window.wsdrain.client.addEventListener('dead', (e) => window.__dead.push(e.detail));
    window.__handovers = [];
    window.wsdrain.client.addEventListener('handover', (e) => window.__handovers.push(e.detail));
    window.__alive = [];
    window.wsdrain.client.addEventListener('alive', (e) =>
      window.__alive.push({ connection: e.detail.connection, event: e.detail.event, instance: e.detail.instance }),
    );
    window.__stateTexts = [];
    const state = document.getElementById('state');
    const record = () => {
      const text = state.textContent.replace(/\s+/g, ' ').trim();
      if (window.__stateTexts.at(-1) !== text) window.__stateTexts.push(text);
    };
    record();
    new MutationObserver(record).observe(state, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await waitForState('open');
  assert.equal((await page.locator('#state').textContent()).trim(), 'open');
  const text = 'héllo wörld ✓ 日本語 😀!';
  await type(text);
  await page.waitForSelector('#messages li[data-status="answered"]');
  const [row] = await rows();
  assert.equal(row.reply, '!😀 語本日 ✓ dlröw olléh');
  assert.match(row.meta, /round trip \d+ ms/);
  // The Send button works as well as Enter.
  await page.getByRole('textbox', { name: 'Message' }).fill('abc');
  await page.getByRole('button', { name: 'Send' }).click();
  sentTexts.push('abc');
  await waitAllAnswered();
  assert.equal(await page.getByRole('textbox', { name: 'Message' }).inputValue(), '', 'the input is cleared');
});

test('alive messages appear with the instance and phase', async () => {
  await page.waitForFunction(() => document.getElementById('alive-instance').textContent === 'pod-a', null, {
    timeout: 5_000,
  });
  assert.equal(await page.locator('#alive-phase').textContent(), 'serving');
  assert.match(await page.locator('#alive-age').textContent(), /^(just now|\d s ago)$/);
  // Replies that came before the first alive learn their instance from it.
  await page.waitForFunction(() =>
    [...document.querySelectorAll('#messages .meta')].every((m) => m.textContent.includes('served by pod-a')),
  );
  // The age keeps counting up between alive messages (interval 1 s, so it stays small).
  assert.match(await page.locator('#alive-age').textContent(), /^(just now|[0-2] s ago)$/);
});

test('a frozen server (SIGSTOP) is a dead link: detected, closed, and the unanswered message re-sent', async () => {
  serverA.child.kill('SIGSTOP');
  const text = 'eingefroren ❄';
  try {
    await type(text);
    await page.waitForSelector('#messages li[data-status="sent"]', { timeout: 2_000 });
    // No alive message for 2 x 1 s: the page gives the socket up by itself.
    await page.waitForFunction(() => window.__dead.length === 1, null, { timeout: 6_000, polling: 50 });
  } finally {
    serverA.child.kill('SIGCONT');
  }
  const [dead] = await page.evaluate(() => window.__dead);
  assert.ok(dead.silentMs >= 2_000 && dead.silentMs < 4_500, `silent for ${dead.silentMs} ms`);
  assert.match(await page.locator('#last-close').textContent(), /no alive message for 2\.\d s/);
  await waitForState('open', 15_000);
  await waitAllAnswered();
  await assertNothingLostOrDoubled();
  // The reply may come before the new connection's first alive: the instance is filled in then.
  await page.waitForFunction(
    () => document.querySelector('#messages li .meta').textContent.includes('served by pod-a'),
    null,
    { timeout: 5_000 },
  );
  const row = (await rows()).at(-1);
  assert.equal(row.text, text);
  assert.match(row.meta, /served by pod-a · round trip \d+ ms · sent 2 times/);
});

test('drain and restart on the same port: "server restarting", reconnect, nothing lost or doubled', async () => {
  const port = serverA.port;
  // Keep typing while the server drains, so some messages are in flight when 1012 arrives. The
  // server's goaway notice comes first: the page tries to hand over, but the draining server's
  // listener is closed and no other server is on the port, so that fails; the old socket serves on
  // until the 1012, SAME_PORT_HANDOVER after the notice (hence up to 100 messages, 4 s of typing).
  await page.evaluate(() => {
    let n = 0;
    window.__typing = setInterval(() => {
      if (document.getElementById('state').dataset.state !== 'open' || n >= 100) {
        clearInterval(window.__typing);
        return;
      }
      n += 1;
      const input = document.getElementById('text');
      input.value = `während drain ${n} ✈`;
      document.getElementById('send-form').requestSubmit();
    }, 40);
  });
  await drain(serverA);
  // The close event follows the server's exit closely; the typing stops at it.
  await page.waitForFunction(() => window.wsdrain.trace.some((t) => t.state === 'restarting'), null, {
    timeout: 5_000,
    polling: 50,
  });
  const typedDuringDrain = await page.evaluate(() =>
    [...document.querySelectorAll('#messages .text')].map((e) => e.textContent).filter((t) => t.startsWith('während')).reverse(),
  );
  sentTexts.push(...typedDuringDrain);
  assert.ok(typedDuringDrain.length > 0, 'some messages were sent during the drain');

  const trace = await page.evaluate(() => window.wsdrain.trace);
  const restart = trace.find((t) => t.state === 'restarting');
  assert.ok(restart, `the page went to "restarting": ${JSON.stringify(trace)}`);
  assert.equal(restart.code, 1012);
  assert.match(restart.text, /^server restarting/);
  assert.ok(
    (await page.evaluate(() => window.__stateTexts)).some((t) => t.startsWith('server restarting')),
    'the page showed "server restarting"',
  );
  assert.match(await page.locator('#last-close').textContent(), /1012 "server restarting; reconnect"/);
  // The notice was followed and the handover failed (nothing listens on the port): then today's path.
  assert.deepEqual(
    (await page.evaluate(() => window.__handovers)).map((h) => [h.phase, h.from]),
    [['started', 'pod-a'], ['failed', 'pod-a']],
  );
  assert.match(await page.locator('#handover').textContent(), /^could not move off pod-a/);
  const openBefore = trace[trace.indexOf(restart) - 1];
  assert.equal(openBefore.state, 'open', 'open until the 1012, through the failed handover');
  const endA = drainEnd(serverA);
  assert.deepEqual([endA.notices, endA.left, endA.forced], [1, 0, 1], 'pod-a: notice sent, then the 1012');

  // Typed during the outage: shown as pending.
  const outage = ['während der Pause 1', 'ünïcödé 2 → €'];
  for (const text of outage) await type(text);
  const pending = (await rows()).filter((r) => outage.includes(r.text));
  assert.deepEqual(pending.map((r) => r.status), ['pending', 'pending']);
  assert.match(pending[0].meta, /pending/);

  serverB = await startServer({ instance: 'pod-b', port });
  assert.equal(serverB.port, port);
  await waitForState('open', 20_000);
  await waitAllAnswered();
  await assertNothingLostOrDoubled();
  await page.waitForFunction(() => document.getElementById('alive-instance').textContent === 'pod-b', null, {
    timeout: 5_000,
  });
  await page.waitForFunction(
    (texts) =>
      [...document.querySelectorAll('#messages li')]
        .filter((li) => texts.includes(li.querySelector('.text').textContent))
        .every((li) => li.querySelector('.meta').textContent.includes('served by pod-b')),
    outage,
    { timeout: 5_000 },
  );
  assert.deepEqual(await instancesOf(outage), ['pod-b', 'pod-b']);
  const resent = (await rows()).filter((r) => typedDuringDrain.includes(r.text) && /sent \d+ times/.test(r.meta));
  const byA = (await instancesOf(typedDuringDrain)).filter((i) => i === 'pod-a').length;
  assert.ok(byA > 0, 'the old socket served on after the failed handover');
  // The new connection named its server with its hello, before any plain alive message.
  const connection = await page.evaluate(() => window.wsdrain.client.connections);
  const firstAlive = (await page.evaluate(() => window.__alive)).find((a) => a.connection === connection);
  assert.deepEqual(firstAlive, { connection, event: 'hello', instance: 'pod-b' });
  console.log(
    `# drain: ${typedDuringDrain.length} messages typed during the drain, ${byA} answered by pod-a, ${resent.length} re-sent after reconnect`,
  );
});

test('a longer outage shows the "reconnecting in N s" countdown and still recovers', async () => {
  const port = serverB.port;
  const t0 = Date.now();
  const reconnectsBefore = await page.evaluate(() => window.wsdrain.trace.filter((t) => t.state === 'reconnecting').length);
  await drain(serverB);
  const text = 'nach langer Pause ☕';
  await type(text);
  // Wait until at least three reconnect attempts failed and a countdown was seen ticking down.
  await page.waitForFunction(
    (before) => {
      const failures = window.wsdrain.trace.filter((t) => t.state === 'reconnecting').length - before;
      const counts = window.__stateTexts
        .map((t) => t.match(/^reconnecting in (\d+) s$/))
        .map((m) => (m ? Number(m[1]) : null));
      const ticked = counts.some((n, i) => n !== null && i > 0 && counts[i - 1] === n + 1);
      return failures >= 3 && ticked;
    },
    reconnectsBefore,
    { timeout: 60_000, polling: 100 },
  );
  const outageMs = Date.now() - t0;
  serverC = await startServer({ instance: 'pod-c', port });
  await waitForState('open', 35_000);
  const recoveredMs = Date.now() - t0;
  await waitAllAnswered();
  await assertNothingLostOrDoubled();
  await page.waitForFunction(() => document.getElementById('alive-instance').textContent === 'pod-c', null, {
    timeout: 5_000,
  });
  await page.waitForFunction(
    () => document.querySelector('#messages li .meta').textContent.includes('served by pod-c'),
    null,
    { timeout: 5_000 },
  );
  const countdowns = (await page.evaluate(() => window.__stateTexts)).filter((t) => t.startsWith('reconnecting in'));
  console.log(`# outage: server down ${outageMs} ms, page open again after ${recoveredMs} ms; countdown seen: ${[...new Set(countdowns)].join(', ')}`);
});

test('tab visible again: a waiting reconnect happens at once', async () => {
  const port = serverC.port;
  await waitForState('open');
  await drain(serverC);
  // Wait for a backoff with seconds left (the attempt counter is still high from the outage).
  await page.waitForFunction(
    () => window.wsdrain.client.state === 'reconnecting' && window.wsdrain.client.retryAt - Date.now() > 2_500,
    null,
    { timeout: 60_000, polling: 50 },
  );
  await startServer({ instance: 'pod-d', port });
  // Headless Chromium is always visible: visibilityState is overridden on the document and the
  // event dispatched, as the browser does when a tab comes back to the front.
  const seen = await page.evaluate(() => {
    const { client } = window.wsdrain;
    const fire = (visibility) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => visibility });
      document.dispatchEvent(new Event('visibilitychange'));
      return { state: client.state, connections: client.connections };
    };
    const before = { msLeft: client.retryAt - Date.now(), connections: client.connections };
    const hidden = fire('hidden');
    const visible = fire('visible');
    delete document.visibilityState; // the real getter again
    return { before, hidden, visible };
  });
  assert.ok(seen.before.msLeft > 1_000, `the retry was still ${seen.before.msLeft} ms away`);
  assert.deepEqual(seen.hidden, { state: 'reconnecting', connections: seen.before.connections }, 'hidden: keeps waiting');
  assert.deepEqual(seen.visible, { state: 'connecting', connections: seen.before.connections + 1 }, 'visible: at once');
  const t0 = Date.now();
  await waitForState('open', 5_000);
  const openMs = Date.now() - t0;
  assert.ok(openMs < seen.before.msLeft, `open after ${openMs} ms, before the retry was due`);
  await page.waitForFunction(() => document.getElementById('alive-instance').textContent === 'pod-d', null, {
    timeout: 5_000,
  });
  console.log(`# visible: reconnected ${openMs} ms after visibilitychange; the retry was ${Math.round(seen.before.msLeft)} ms away`);
});

test('browser offline: shows offline and stops trying; online: reconnects at once', async () => {
  await waitForState('open');
  const connectionsBefore = await page.evaluate(() => window.wsdrain.client.connections);
  await context.setOffline(true);
  await waitForState('offline', 5_000);
  assert.match(await page.locator('#state').textContent(), /offline/);
  const text = 'offline getippt';
  await type(text);
  await page.waitForTimeout(1_500);
  assert.equal(
    await page.evaluate(() => window.wsdrain.client.connections),
    connectionsBefore,
    'no connection attempts while offline',
  );
  assert.equal((await rows()).at(-1).status, 'pending');
  const t0 = Date.now();
  await context.setOffline(false);
  await waitForState('open', 5_000);
  const reconnectMs = Date.now() - t0;
  assert.ok(reconnectMs < 2_000, `reconnected ${reconnectMs} ms after online`);
  await waitAllAnswered();
  await assertNothingLostOrDoubled();
});

test('handover between two servers behind one address: the page moves with no outage, nothing re-sent', async () => {
  // A rollout: pod-e serves the page through the proxy (the load balancer); pod-f starts; the proxy
  // sends new connections to pod-f; pod-e gets SIGTERM and sends its goaway notice.
  const env = { HANDOVER_TIMEOUT: '4s', DRAIN_WINDOW: '1s', ALIVE_INTERVAL: '1s' };
  const serverE = await startServer({ instance: 'pod-e', env });
  const proxy = await startProxy(serverE.port);
  const tab = await context.newPage();
  watchConsole(tab, '[handover tab] ');
  // Every socket the page opens, as the browser sees it: who closed it, with which code, cleanly?
  await tab.addInitScript(() => {
    const sockets = (window.__sockets = []);
    window.WebSocket = class extends window.WebSocket {
      constructor(...args) {
        super(...args);
        const seen = { opened: false, closeCalled: null, closed: null };
        sockets.push(seen);
        this.__seen = seen;
        this.addEventListener('open', () => (seen.opened = true));
        this.addEventListener('close', (e) => (seen.closed = { code: e.code, wasClean: e.wasClean }));
      }
      close(code, reason) {
        this.__seen.closeCalled ??= { code, reason };
        return super.close(code, reason);
      }
    };
  });
  let serverF = null;
  try {
    await tab.goto(`http://127.0.0.1:${proxy.port}/`);
    await tab.evaluate(() => {
      const { client } = window.wsdrain;
      const rec = (window.__rec = { replies: [], sent: [], requeued: 0, handovers: [], alive: [], stateTexts: [] });
      client.addEventListener('reply', (e) =>
        rec.replies.push({ seq: e.detail.message.seq, instance: e.detail.instance, connection: e.detail.connection, afterMove: rec.handovers.some((h) => h.phase === 'moved') }),
      );
      client.addEventListener('sent', (e) => rec.sent.push(e.detail.message.seq));
      client.addEventListener('requeued', (e) => {
        rec.requeued += e.detail.messages.length;
      });
      client.addEventListener('handover', (e) => rec.handovers.push(e.detail));
      client.addEventListener('alive', (e) =>
        rec.alive.push({ connection: e.detail.connection, event: e.detail.event, instance: e.detail.instance }),
      );
      const state = document.getElementById('state');
      const record = () => {
        const text = state.textContent.replace(/\s+/g, ' ').trim();
        if (rec.stateTexts.at(-1) !== text) rec.stateTexts.push(text);
      };
      record();
      new MutationObserver(record).observe(state, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await tab.waitForFunction(
      () => document.getElementById('state').dataset.state === 'open' && document.getElementById('alive-instance').textContent === 'pod-e',
      null,
      { timeout: 10_000, polling: 50 },
    );
    serverF = await startServer({ instance: 'pod-f', env });
    proxy.switchTo(serverF.port);
    // pod-e's answers (and its notice) reach the page 300 ms late from now on, so replies are
    // still owed on the old socket when the page moves, whatever the machine's speed: the old
    // socket must deliver them after the move.
    proxy.delayOpenPipes(300);

    // Typed through the page's form every 50 ms until 10 messages went out after the move (at
    // most 200, 10 s), so messages are on their way before, during and after the handover.
    await tab.evaluate(() => {
      let n = 0;
      let afterMove = 0;
      window.__typing = setInterval(() => {
        if (n >= 200 || afterMove >= 10) {
          clearInterval(window.__typing);
          window.__typed = n;
          return;
        }
        n += 1;
        if (window.__rec.handovers.some((h) => h.phase === 'moved')) afterMove += 1;
        const input = document.getElementById('text');
        input.value = `rollout ${n} ⇄`;
        document.getElementById('send-form').requestSubmit();
      }, 50);
    });
    await tab.waitForFunction(() => window.__rec.replies.length >= 3, null, { timeout: 5_000, polling: 50 });
    serverE.child.kill('SIGTERM');
    const exitE = within(12_000, serverE.exit, 'pod-e exit after SIGTERM');
    exitE.catch(() => {}); // awaited below

    // The move: the page names pod-f as soon as the new socket's hello is there.
    await tab.waitForFunction(() => window.__rec.handovers.some((h) => h.phase === 'moved'), null, { timeout: 5_000, polling: 20 });
    await tab.waitForFunction(
      () =>
        document.getElementById('alive-instance').textContent === 'pod-f' &&
        /^moved to pod-f from pod-e$/.test(document.getElementById('handover').textContent),
      null,
      { timeout: 2_000, polling: 20 },
    );
    await tab.waitForFunction(() => window.__typed !== undefined, null, { timeout: 15_000, polling: 50 });
    const typed = await tab.evaluate(() => window.__typed);
    const texts = Array.from({ length: typed }, (_, i) => `rollout ${i + 1} ⇄`);
    await tab.waitForFunction(
      (n) => {
        const lis = [...document.querySelectorAll('#messages li')];
        return lis.length === n && lis.every((li) => li.dataset.status === 'answered');
      },
      typed,
      { timeout: 10_000, polling: 50 },
    );
    assert.deepEqual(await exitE, { code: 0, signal: null }, 'pod-e exits 0 after its drain');
    // pod-e's own account: one notice, the client left by itself, no 1012 was needed.
    const endE = drainEnd(serverE);
    assert.deepEqual([endE.notices, endE.left, endE.forced, endE.closes_sent], [1, 1, 0, 0], JSON.stringify(endE));

    const rec = await tab.evaluate(() => window.__rec);
    const trace = await tab.evaluate(() => window.wsdrain.trace);
    // No outage shown: the state went connecting -> open once and stayed open.
    assert.deepEqual(trace.map((t) => t.state), ['connecting', 'open'], JSON.stringify(trace));
    // (The recorder starts after the load: the page may still have been connecting then.)
    const shownFromOpen = rec.stateTexts.slice(rec.stateTexts.indexOf('open'));
    assert.deepEqual(shownFromOpen, ['open'], `only "open" was shown once open: ${rec.stateTexts}`);
    // One handover, from pod-e, and the new connection's first message was its hello.
    const [started, moved] = rec.handovers;
    assert.deepEqual(rec.handovers.map((h) => [h.phase, h.from]), [['started', 'pod-e'], ['moved', 'pod-e']]);
    assert.equal(moved.connection, started.connection);
    assert.deepEqual(
      rec.alive.find((a) => a.connection === moved.connection),
      { connection: moved.connection, event: 'hello', instance: 'pod-f' },
    );
    // Every message shown once, in order, with its own reply; sent once, answered once.
    const shown = await tab.$$eval('#messages li', (lis) =>
      lis.reverse().map((li) => ({
        text: li.querySelector('.text').textContent,
        reply: li.querySelector('.reply-text').textContent,
        meta: li.querySelector('.meta').textContent,
      })),
    );
    assert.deepEqual(shown.map((r) => r.text), texts, 'every message shown once, in order');
    for (const row of shown) {
      assert.equal(row.reply, reverse(row.text));
      assert.doesNotMatch(row.meta, /sent \d+ times/, `${row.text} was not re-sent`);
    }
    assert.equal(rec.requeued, 0, 'nothing was re-queued');
    assert.equal(rec.sent.length, typed, 'each message went out once');
    assert.equal(new Set(rec.sent).size, typed);
    assert.equal(rec.replies.length, typed, 'each message answered once');
    assert.equal(new Set(rec.replies.map((r) => r.seq)).size, typed);
    // Replies on the old socket came from pod-e, on the new one from pod-f; both served.
    for (const reply of rec.replies) {
      assert.equal(reply.instance, reply.connection === moved.connection ? 'pod-f' : 'pod-e', JSON.stringify(reply));
    }
    const byF = rec.replies.filter((r) => r.instance === 'pod-f').length;
    assert.ok(byF >= 10, `${byF} answered by pod-f`);
    // The new socket went through the proxy to pod-f (the page itself was loaded from pod-e).
    assert.equal(proxy.accepted.at(-1), serverF.port);
    assert.equal(await tab.evaluate(() => window.wsdrain.client.connections), 2, 'two sockets: no reconnect');
    // The old socket was closed by the page with 1000 once it owed nothing, and the server completed
    // the close handshake (no 1012 from it); the new one is open.
    await tab.waitForFunction(() => window.__sockets[0]?.closed !== null, null, { timeout: 5_000, polling: 50 });
    const sockets = await tab.evaluate(() => window.__sockets);
    assert.deepEqual(sockets, [
      { opened: true, closeCalled: { code: 1000, reason: 'handed over' }, closed: { code: 1000, wasClean: true } },
      { opened: true, closeCalled: null, closed: null },
    ]);
    const oldAfterMove = rec.replies.filter((r) => r.afterMove && r.instance === 'pod-e').length;
    assert.ok(oldAfterMove > 0, 'replies owed on the old socket were delivered after the move');
    console.log(
      `# handover: ${typed} messages typed, ${typed - byF} answered by pod-e (${oldAfterMove} of them after the move), ${byF} by pod-f, none re-sent`,
    );
  } finally {
    await tab.close();
    await proxy.close();
    if (serverF) await drain(serverF);
  }
});

test('accessible at phone width: labels, focus order, live state, no horizontal scroll', async () => {
  assert.equal(await page.locator('#state').getAttribute('aria-live'), 'polite');
  assert.equal(await page.locator('#state').getAttribute('role'), 'status');
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scroll at 360 px (overflow ${overflow} px)`);
  // From the top of the page (the heading; the "Reconnect now" button is hidden while open):
  await page.evaluate(() => {
    const h1 = document.querySelector('h1');
    h1.tabIndex = -1;
    h1.focus();
  });
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'text', 'Tab goes to the message input first');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'send', 'then to Send');
  await page.setViewportSize({ width: 900, height: 900 });
});

test('screenshot of the page in a known state is not blank', async () => {
  // Known state: connected to pod-d, every message answered, the input empty and not focused.
  await waitForState('open');
  await page.evaluate(() => document.activeElement?.blur());
  await page.mouse.move(0, 0);
  const file = join(ARTIFACTS, 'browser-page.png');
  const png = await page.screenshot({ path: file, fullPage: false });
  const image = decodePng(png);
  assert.equal(image.width, 900);
  assert.equal(image.height, 900);
  assert.ok(png.length > 20_000, `screenshot is ${png.length} bytes`);
  const colours = distinctColours(image);
  assert.ok(colours > 50, `screenshot has ${colours} distinct colours`);
  // The README's picture: written when missing or asked for (UPDATE_SCREENSHOT=1), so a test run
  // does not change a tracked file every time.
  const readmeShot = join(ROOT, 'docs/screenshot.png');
  if (process.env.UPDATE_SCREENSHOT === '1' || !existsSync(readmeShot)) {
    mkdirSync(join(ROOT, 'docs'), { recursive: true });
    copyFileSync(file, readmeShot);
  }
  console.log(`# screenshot: ${png.length} bytes, ${image.width}x${image.height}, ${colours} colours: ${file}`);
});

test('no console errors but the browser\'s own failed-connection lines', () => {
  assert.deepEqual(unexpectedConsole, []);
});

// --- PNG decoding (8-bit RGB/RGBA, not interlaced: what Chromium writes) --------------------------------

function decodePng(buf) {
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

function distinctColours({ pixels, channels }) {
  const seen = new Set();
  for (let i = 0; i < pixels.length; i += channels) {
    seen.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
  }
  return seen.size;
}
