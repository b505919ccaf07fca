// Browser tests of the page in headless Chromium against real wsdrain processes: one tab stays
// open through the whole file, as a user's tab would:
//   1. it connects and shows a reversed multi-byte reply;
//   2. alive messages appear with the instance;
//   3. a frozen server (SIGSTOP) is caught as a dead link and the page reconnects to it after SIGCONT;
//   4. server A drains (SIGTERM: goaway notice, then 1012), server B starts on the same port: the
//      page's handover fails (nothing else listens there), so it shows "server restarting" at the
//      1012, reconnects by itself, and everything typed (also during the outage) is answered
//      exactly once;
//   5. a longer outage shows the "reconnecting in N s" countdown, and the page still recovers;
//   6. the tab becoming visible again ends a waiting reconnect at once;
//   7. offline and online;
//   8. accessibility at phone width, and a screenshot of the page in a known state, checked to be
//      non-blank;
//   and through all of it no console errors but the browser's own failed-connection lines.
// Run through tests/tiers/browser.sh (see lib.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ARTIFACTS,
  ROOT,
  drain,
  drainEnd,
  finish,
  launchBrowser,
  reverse,
  startServer,
  startTyping,
  stopTyping,
  unexpectedConsole,
  watchConsole,
  watchStateTexts,
} from './lib.mjs';
import { decodePng, distinctColours } from './png.mjs';

let context;
let page;
let serverA;
let serverB;
let serverC;
const sentTexts = []; // everything typed into the page, in order

before(async () => {
  serverA = await startServer({ instance: 'pod-a' });
  context = await launchBrowser();
  page = context.pages()[0] ?? (await context.newPage());
  watchConsole(page, '');
});

after(async () => {
  if (page) {
    const trace = await page.evaluate(() => window.wsdrain?.trace ?? []).catch(() => []);
    writeFileSync(join(ARTIFACTS, 'browser-trace.json'), JSON.stringify(trace, null, 1));
  }
  await finish('page', context);
});

// --- page helpers --------------------------------------------------------------------------------------

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
  });
  await page.evaluate(watchStateTexts);
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
  // The page's words for the same silence (a timer late on a busy machine moves both alike).
  assert.equal(await page.locator('#last-close').textContent(), `no alive message for ${(dead.silentMs / 1000).toFixed(1)} s: link closed`);
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

test('drain and restart on the same port: "server restarting", reconnect, nothing lost or doubled', async (t) => {
  const port = serverA.port;
  // Keep typing while the server drains, so some messages are in flight when 1012 arrives. The
  // server's goaway notice comes first: the page tries to hand over, but the draining server's
  // listener is closed and no other server is on the port, so that fails; the old socket serves on
  // until the 1012, SAME_PORT_HANDOVER after the notice (hence up to 100 messages, 4 s of typing).
  await startTyping(page, { prefix: 'während drain', mark: '✈', everyMs: 40, max: 100, whileOpen: true });
  await drain(serverA);
  // The close event follows the server's exit closely; the typing stops at it.
  await page.waitForFunction(() => window.wsdrain.trace.some((t) => t.state === 'restarting'), null, {
    timeout: 5_000,
    polling: 50,
  });
  const typedDuringDrain = await stopTyping(page);
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
  t.diagnostic(
    `drain: ${typedDuringDrain.length} messages typed during the drain, ${byA} answered by pod-a, ${resent.length} re-sent after reconnect`,
  );
});

test('a longer outage shows the "reconnecting in N s" countdown and still recovers', async (t) => {
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
  t.diagnostic(`outage: server down ${outageMs} ms, page open again after ${recoveredMs} ms; countdown seen: ${[...new Set(countdowns)].join(', ')}`);
});

test('tab visible again: a waiting reconnect happens at once', async (t) => {
  const port = serverC.port;
  await waitForState('open');
  await drain(serverC);
  // Wait for a backoff with seconds left (the attempt counter is still high from the outage):
  // 5 s, so that pod-d's start below (tens of ms, seconds on a busy machine) cannot outlast it.
  await page.waitForFunction(
    () => window.wsdrain.client.state === 'reconnecting' && window.wsdrain.client.retryAt - performance.now() > 5_000,
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
    const before = { msLeft: client.retryAt - performance.now(), connections: client.connections };
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
  t.diagnostic(`visible: reconnected ${openMs} ms after visibilitychange; the retry was ${Math.round(seen.before.msLeft)} ms away`);
});

test('browser offline: shows offline and stops trying; online: reconnects at once', async () => {
  await waitForState('open');
  const connectionsBefore = await page.evaluate(() => window.wsdrain.client.connections);
  await context.setOffline(true);
  await waitForState('offline', 5_000);
  assert.match(await page.locator('#state').textContent(), /offline/);
  const text = 'offline getippt';
  await type(text);
  await page.waitForTimeout(1_500); // an absence window: no attempt may start in it
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
  assert.ok(reconnectMs < 4_000, `reconnected ${reconnectMs} ms after online`);
  await waitAllAnswered();
  await assertNothingLostOrDoubled();
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

test('screenshot of the page in a known state is not blank', async (t) => {
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
  t.diagnostic(`screenshot: ${png.length} bytes, ${image.width}x${image.height}, ${colours} colours: ${file}`);
});

test('no console errors but the browser\'s own failed-connection lines', () => {
  assert.deepEqual(unexpectedConsole, []);
});
