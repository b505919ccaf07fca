// Browser test of the handover (goaway notice) in headless Chromium against real wsdrain processes:
// a second tab loads the page through a TCP proxy (the load balancer) from server E; server F
// starts, the proxy sends new connections to F, E gets SIGTERM and sends its goaway notice: the
// page moves to F while typing, never leaves "open", re-sends nothing; no console errors.
// Run through tests/tiers/browser.sh (see lib.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  drain,
  drainEnd,
  finish,
  launchBrowser,
  openRecordedTab,
  recording,
  reverse,
  startProxy,
  startServer,
  startTyping,
  typingStopped,
  unexpectedConsole,
  within,
} from './lib.mjs';

let context;

before(async () => {
  context = await launchBrowser();
});

after(() => finish('handover', context));

test('handover between two servers behind one address: the page moves with no outage, nothing re-sent', async (t) => {
  // A rollout: pod-e serves the page through the proxy (the load balancer); pod-f starts; the proxy
  // sends new connections to pod-f; pod-e gets SIGTERM and sends its goaway notice.
  const env = { HANDOVER_TIMEOUT: '4s', DRAIN_WINDOW: '1s', ALIVE_INTERVAL: '1s' };
  const serverE = await startServer({ instance: 'pod-e', env });
  const proxy = await startProxy(serverE.port);
  let tab = null;
  let serverF = null;
  try {
    // Every socket the page opens as the browser sees it, and the client's events (lib.mjs).
    tab = await openRecordedTab(context, `http://127.0.0.1:${proxy.port}/`, 'pod-e', 'handover tab');
    serverF = await startServer({ instance: 'pod-f', env });
    proxy.switchTo(serverF.port);
    // pod-e's answers (and its notice) reach the page 300 ms late from now on, so replies are
    // still owed on the old socket when the page moves, whatever the machine's speed: the old
    // socket must deliver them after the move.
    proxy.delayOpenPipes(300);

    // Typed through the page's form every 50 ms until 10 messages went out after the move (at
    // most 200, 10 s), so messages are on their way before, during and after the handover.
    await startTyping(tab, { prefix: 'rollout', mark: '⇄', everyMs: 50, max: 200, afterMove: 10 });
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
    const texts = await typingStopped(tab, 15_000);
    const typed = texts.length;
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
    const stateTexts = await tab.evaluate(() => window.__stateTexts);
    const trace = await tab.evaluate(() => window.wsdrain.trace);
    // No outage shown: the state went connecting -> open once and stayed open.
    assert.deepEqual(trace.map((t) => t.state), ['connecting', 'open'], JSON.stringify(trace));
    const shownFromOpen = stateTexts.slice(stateTexts.indexOf('open'));
    assert.deepEqual(shownFromOpen, ['open'], `only "open" was shown once open: ${stateTexts}`);
    // One handover, from pod-e, and the new connection's first message was its hello.
    const [started, moved] = rec.handovers;
    assert.deepEqual(rec.handovers.map((h) => [h.phase, h.from]), [['started', 'pod-e'], ['moved', 'pod-e']]);
    assert.equal(moved.connection, started.connection);
    const { at, ...firstAlive } = rec.alive.find((a) => a.connection === moved.connection);
    assert.deepEqual(firstAlive, { connection: moved.connection, event: 'hello', instance: 'pod-f' }, `at ${at}`);
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
    assert.deepEqual(rec.requeued, [], 'nothing was re-queued');
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
    await tab.waitForFunction(() => window.__rec.sockets[0]?.closed !== null, null, { timeout: 5_000, polling: 50 });
    const sockets = (await recording(tab)).sockets.map((s) => ({
      opened: s.openedAt !== null,
      closeCalled: s.closeCalled && { code: s.closeCalled.code, reason: s.closeCalled.reason },
      closed: s.closed && { code: s.closed.code, wasClean: s.closed.wasClean },
    }));
    assert.deepEqual(sockets, [
      { opened: true, closeCalled: { code: 1000, reason: 'handed over' }, closed: { code: 1000, wasClean: true } },
      { opened: true, closeCalled: null, closed: null },
    ]);
    const oldAfterMove = rec.replies.filter((r) => r.afterMove && r.instance === 'pod-e').length;
    assert.ok(oldAfterMove > 0, 'replies owed on the old socket were delivered after the move');
    t.diagnostic(
      `handover: ${typed} messages typed, ${typed - byF} answered by pod-e (${oldAfterMove} of them after the move), ${byF} by pod-f, none re-sent`,
    );
  } finally {
    await tab?.close();
    await proxy.close();
    if (serverF) await drain(serverF);
  }
});

test('no console errors but the browser\'s own failed-connection lines', () => {
  assert.deepEqual(unexpectedConsole, []);
});
