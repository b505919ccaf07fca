// Browser tests of a handover cut short (issue 20) in headless Chromium, against real wsdrain
// processes behind the TCP proxy (the load balancer), with real signals, while the page types.
// pod-e gets SIGTERM and sends its goaway notice (DRAIN_WINDOW=0); the page opens its next socket
// through the proxy, to pod-f. Then pod-e ends before the handover is done:
//   - SIGKILL while the next socket is still opening (the proxy holds it): the old socket ends
//     with an EOF, no close frame; the page waits for the next socket and re-sends there;
//   - SIGKILL after the move, while the old socket still owes replies;
//   - SIGSTOP after the move: the old socket goes silent and is given up after 2 x interval_ms;
//   - the short drain of a Spot VM or an eviction: SIGTERM while pod-e's /prestop still waits
//     (PRESTOP_DELAY=30s); the drain shrunk to SHORT_DRAIN 1.5 s brings the 1012 1 s after the
//     notice, once as it comes and once before the next socket could open.
// What pod-e owed is kept from it by the proxy (`stall`: bytes a pod never read before it died),
// so every run has messages in flight when it ends. Each: every message answered once, nothing
// shown twice, never more than two sockets; no console errors.
// Run through tests/tiers/browser.sh (see lib.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertEachAnsweredOnce,
  callPrestop,
  counts,
  drainEnd,
  eventCounts,
  finish,
  launchBrowser,
  openRecordedTab,
  recording,
  startProxy,
  startServer,
  startTyping,
  stopTyping,
  unexpectedConsole,
  waitUntil,
  within,
} from './lib.mjs';

let context;

before(async () => {
  context = await launchBrowser();
});

after(() => finish('cut-short', context));

/**
 * pod-e and pod-f behind the proxy, a tab on pod-e typing every 50 ms with 5 replies in; new
 * connections already go to pod-f. `body` gets them all; everything is stopped afterwards.
 */
async function rollout(tag, env, body) {
  const serverE = await startServer({ instance: 'pod-e', env: { DRAIN_WINDOW: '0s', ALIVE_INTERVAL: '1s', ...env } });
  const serverF = await startServer({ instance: 'pod-f', env: { ALIVE_INTERVAL: '1s' } });
  const proxy = await startProxy(serverE.port);
  let tab;
  try {
    tab = await openRecordedTab(context, `http://127.0.0.1:${proxy.port}/`, 'pod-e', tag);
    await startTyping(tab, { prefix: tag, mark: '⇄' });
    await waitUntil(async () => (await counts(tab)).replies >= 5, 5_000, '5 replies from pod-e');
    proxy.switchTo(serverF.port);
    const [pipe] = proxy.webSockets({ open: true });
    assert.equal(pipe?.port, serverE.port, 'the page\'s WebSocket goes through the proxy to pod-e');
    await body({ serverE, serverF, proxy, tab, pipe });
  } finally {
    await tab?.close();
    await proxy.close();
    serverE.child.kill('SIGKILL'); // also ends a stopped process
    serverF.child.kill('SIGKILL');
    await within(5_000, Promise.all([serverE.exit, serverF.exit]), 'both servers gone');
  }
}

/** From now on pod-e never reads what the page sends on `pipe`; resolves once 3 messages were kept. */
async function stallOldSocket(proxy, tab, pipe) {
  proxy.stall(pipe);
  const typed = (await counts(tab)).typed;
  await waitUntil(async () => pipe.stalledBytes > 0 && (await counts(tab)).typed >= typed + 3, 5_000, '3 messages pod-e never reads');
}

const waitForReplies = (tab, instance, n) =>
  waitUntil(async () => ((await counts(tab)).byInstance[instance] ?? 0) >= n, 15_000, `${n} replies from ${instance}`);

/** What was re-queued was answered by pod-f and sent twice; everything else was sent once. */
function assertResentOnceToF(rec) {
  assert.ok(rec.requeued.length >= 1, 'messages were in flight on the old socket when it ended');
  for (const reply of rec.replies) {
    const requeued = rec.requeued.includes(reply.text);
    assert.equal(reply.sends, requeued ? 2 : 1, `${reply.text} sent ${reply.sends} times`);
    if (requeued) assert.equal(reply.instance, 'pod-f', `${reply.text} re-sent to pod-f`);
  }
  assert.ok(rec.peakLive <= 2, `at most two sockets at once (${rec.peakLive})`);
}

/**
 * A Spot VM's preemption on pod-e: its preStop hook still waits when SIGTERM comes, so it runs
 * the short drain. Resolves once the hook was answered (at once) and the drain is the short one.
 */
async function preempt(serverE) {
  const hook = callPrestop(serverE);
  await waitUntil(() => serverE.lines.some((l) => l.includes(' prestop ready=false')), 5_000, 'pod-e in preStop');
  serverE.child.kill('SIGTERM');
  assert.equal(await within(5_000, hook, 'the hook answered'), 200);
  const draining = await waitUntil(() => serverE.lines.find((l) => l.includes(' draining ')), 5_000, 'the draining line');
  assert.match(draining, / drain=short reason=grace_over /, draining);
  assert.match(draining, / deadline_ms=1500$/, draining);
}

const phases = (rec) => rec.handovers.map((h) => [h.phase, h.from]);
const states = (rec) => rec.states.map((s) => s.state);

test('SIGKILL while the next socket is still opening: the page waits for it and re-sends there', async (t) => {
  await rollout('opening', { HANDOVER_TIMEOUT: '5s' }, async ({ serverE, proxy, tab, pipe }) => {
    proxy.hold(); // the next socket opens slowly: it waits at the proxy
    await stallOldSocket(proxy, tab, pipe);
    serverE.child.kill('SIGTERM');
    await waitUntil(() => proxy.held.length === 1, 5_000, 'the notice: the page opens its next socket');
    serverE.child.kill('SIGKILL');
    assert.deepEqual(await within(5_000, serverE.exit, 'pod-e exit'), { code: null, signal: 'SIGKILL' });
    const closed = await waitUntil(async () => (await recording(tab)).sockets[0].closed, 5_000, 'the old socket\'s end');
    assert.deepEqual([closed.code, closed.wasClean], [1006, false], 'no close frame');
    assert.equal(pipe.upEnd, 'eof', 'pod-e\'s kernel closed the connection (an EOF)');
    await tab.waitForFunction(() => window.wsdrain.client.state === 'connecting', null, { timeout: 2_000, polling: 20 });
    proxy.release();
    await waitForReplies(tab, 'pod-f', 10);
    const typed = await stopTyping(tab);
    const rec = await assertEachAnsweredOnce(tab, typed);

    assert.deepEqual(states(rec), ['connecting', 'open', 'connecting', 'open'], 'no backoff, no restart delay');
    assert.deepEqual(phases(rec), [['started', 'pod-e'], ['moved', 'pod-e']]);
    assert.equal(rec.sockets.length, 2, 'no third socket');
    assert.equal(rec.sockets[0].closeCalled, null);
    assert.ok(rec.sockets[1].openedAt > closed.at, 'the next socket opened after the old one ended');
    assertResentOnceToF(rec);
    t.diagnostic(`opening: ${typed.length} typed, ${rec.requeued.length} owed by pod-e at its SIGKILL, re-sent to pod-f`);
  });
});

test('SIGKILL after the move, while the old socket still owes replies: they are re-sent, the page stays open', async (t) => {
  await rollout('moved', { HANDOVER_TIMEOUT: '5s' }, async ({ serverE, proxy, tab, pipe }) => {
    await stallOldSocket(proxy, tab, pipe);
    serverE.child.kill('SIGTERM');
    await waitUntil(async () => (await recording(tab)).handovers.some((h) => h.phase === 'moved'), 5_000, 'the move');
    await waitForReplies(tab, 'pod-f', 3);
    let rec = await recording(tab);
    assert.deepEqual([rec.sockets[0].closeCalled, rec.sockets[0].closed], [null, null], 'the old socket is kept: it owes replies');
    serverE.child.kill('SIGKILL');
    assert.deepEqual(await within(5_000, serverE.exit, 'pod-e exit'), { code: null, signal: 'SIGKILL' });
    const closed = await waitUntil(async () => (await recording(tab)).sockets[0].closed, 5_000, 'the old socket\'s end');
    assert.deepEqual([closed.code, closed.wasClean], [1006, false], 'no close frame');
    await waitForReplies(tab, 'pod-f', 10);
    const typed = await stopTyping(tab);
    rec = await assertEachAnsweredOnce(tab, typed);

    assert.deepEqual(states(rec), ['connecting', 'open'], 'never a state but open');
    assert.deepEqual(phases(rec), [['started', 'pod-e'], ['moved', 'pod-e']]);
    assert.equal(rec.sockets.length, 2);
    assertResentOnceToF(rec);
    t.diagnostic(`moved: ${typed.length} typed, ${rec.requeued.length} owed by pod-e at its SIGKILL, re-sent to pod-f`);
  });
});

test('SIGSTOP after the move: the silent old socket is given up after 2 x interval_ms, what it owed re-sent', async (t) => {
  await rollout('silent', { HANDOVER_TIMEOUT: '5s' }, async ({ serverE, proxy, tab, pipe }) => {
    await stallOldSocket(proxy, tab, pipe);
    serverE.child.kill('SIGTERM');
    await waitUntil(async () => (await recording(tab)).handovers.some((h) => h.phase === 'moved'), 5_000, 'the move');
    await waitForReplies(tab, 'pod-f', 3);
    const stoppedAt = Date.now();
    serverE.child.kill('SIGSTOP');
    const given = await waitUntil(async () => (await recording(tab)).sockets[0].closeCalled, 5_000, 'the old socket given up');
    assert.deepEqual([given.code, given.reason], [4000, 'no alive message']);
    // 2 x interval_ms, then the page's timer: generous for two busy cores (the wait above bounds it).
    assert.ok(given.at - stoppedAt < 2_000 + 2_000, `given up ${given.at - stoppedAt} ms after SIGSTOP (interval 1 s)`);
    await waitForReplies(tab, 'pod-f', 10);
    const typed = await stopTyping(tab);
    const rec = await assertEachAnsweredOnce(tab, typed);

    assert.deepEqual(states(rec), ['connecting', 'open'], 'never a state but open');
    assert.deepEqual(rec.dead, [], 'the current link (pod-f) was never in doubt');
    assert.equal(rec.sockets.length, 2);
    assertResentOnceToF(rec);
    t.diagnostic(`silent: old socket given up ${given.at - stoppedAt} ms after SIGSTOP; ${rec.requeued.length} re-sent to pod-f`);
  });
});

test('short drain (notice, 1012 1 s later) as it comes: the page moves, nothing lost or doubled', async (t) => {
  await rollout('short', { PRESTOP_DELAY: '30s' }, async ({ serverE, tab }) => {
    await preempt(serverE);
    assert.deepEqual(await within(5_000, serverE.exit, 'pod-e exit'), { code: 0, signal: null });
    await waitForReplies(tab, 'pod-f', 10);
    const typed = await stopTyping(tab);
    const rec = await assertEachAnsweredOnce(tab, typed);

    assert.deepEqual(phases(rec), [['started', 'pod-e'], ['moved', 'pod-e']]);
    assert.ok(!states(rec).includes('restarting') && !states(rec).includes('reconnecting'), `${states(rec)}`);
    assert.equal(rec.sockets.length, 2);
    assert.ok(rec.peakLive <= 2);
    for (const reply of rec.replies) {
      assert.equal(reply.sends, rec.requeued.includes(reply.text) ? 2 : 1, `${reply.text} sent ${reply.sends} times`);
    }
    const end = drainEnd(serverE);
    assert.equal(end.notices, 1);
    t.diagnostic(
      `short drain: ${typed.length} typed; pod-e: left=${end.left} forced=${end.forced}; ${rec.requeued.length} re-sent; ` +
        `states ${states(rec).join(' → ')}`,
    );
  });
});

test('short drain, the 1012 before the next socket could open: the page waits for it, re-sends what pod-e did not answer', async (t) => {
  await rollout('short-held', { PRESTOP_DELAY: '30s' }, async ({ serverE, proxy, tab, pipe }) => {
    proxy.hold(); // the next socket is slower than the short drain
    // pod-e's words reach the page 300 ms late: what the page sends in the 300 ms before its 1012
    // arrives reaches pod-e after it closed, unanswered.
    pipe.delayMs = 300;
    await preempt(serverE);
    const closed = await waitUntil(async () => (await recording(tab)).sockets[0].closed, 5_000, 'the 1012');
    assert.deepEqual([closed.code, closed.wasClean], [1012, true]);
    assert.equal(proxy.held.length, 1, 'the next socket was still opening');
    assert.equal(await tab.evaluate(() => window.wsdrain.client.state), 'connecting');
    proxy.release();
    assert.deepEqual(await within(5_000, serverE.exit, 'pod-e exit'), { code: 0, signal: null });
    await waitForReplies(tab, 'pod-f', 10);
    const typed = await stopTyping(tab);
    const rec = await assertEachAnsweredOnce(tab, typed);

    assert.deepEqual(states(rec), ['connecting', 'open', 'connecting', 'open'], 'no restart delay: the next socket was on its way');
    assert.deepEqual(phases(rec), [['started', 'pod-e'], ['moved', 'pod-e']]);
    assert.equal(rec.sockets.length, 2);
    assertResentOnceToF(rec);
    // pod-e's own account: what came after its 1012 is what the page re-sent, but for at most
    // one message more on the page's side: one sent in the moment the 1012 had reached the
    // browser and not yet the page (readyState still OPEN), which the browser drops after its
    // close answer. The page cannot know, so it re-sends it, as it must. Two fresh-clone CI runs
    // saw it (7 re-sent against 6 counted; 4 against 3).
    const exit = eventCounts(serverE, 'exit');
    const afterClose = exit.ws_messages_after_close;
    assert.ok(
      afterClose <= rec.requeued.length && rec.requeued.length <= afterClose + 1,
      `pod-e's ${afterClose} messages after close, the page's ${rec.requeued.length} re-sends`,
    );
    assert.deepEqual([drainEnd(serverE).notices, drainEnd(serverE).forced], [1, 1]);
    t.diagnostic(`short drain, held: ${typed.length} typed, ${rec.requeued.length} sent after pod-e's 1012, re-sent to pod-f`);
  });
});

test('no console errors but the browser\'s own failed-connection lines', () => {
  assert.deepEqual(unexpectedConsole, []);
});
