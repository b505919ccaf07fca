// Browser tests of the impolite endings of a pod (issue 20) in headless Chromium, against real
// wsdrain processes behind the TCP proxy (the load balancer), with real signals, while the page
// types:
//   - SIGKILL (an OOM kill, a crash): the kernel resets the connection, the page sees 1006 without
//     a close frame, reconnects with its backoff to the second server and re-sends what was
//     unanswered;
//   - SIGSTOP (a frozen process, a lost node): the socket stays open and silent; the page declares
//     it dead after 2 x interval_ms; its reconnect lands on the frozen server once more (still in
//     the endpoints: its kernel accepts TCP through the backlog, the upgrade is never answered),
//     which the connect timeout ends; then the second server.
// Each: every message answered once, nothing shown twice, at most two sockets; no console errors.
// Run through tests/tiers/browser.sh (see lib.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertEachAnsweredOnce,
  counts,
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

after(() => finish('endings', context));

test('SIGKILL mid-traffic: the reset is a 1006, the page reconnects to the second server, nothing lost or doubled', async (t) => {
  // ALIVE_INTERVAL 2 s: the watchdog (4 s) stays out of the way of the few hundred ms between
  // SIGSTOP and SIGKILL below; this test is about the close without a close frame.
  const env = { ALIVE_INTERVAL: '2s' };
  const serverA = await startServer({ instance: 'pod-a', env });
  const serverB = await startServer({ instance: 'pod-b', env });
  const proxy = await startProxy(serverA.port);
  let tab;
  try {
    tab = await openRecordedTab(context, `http://127.0.0.1:${proxy.port}/`, 'pod-a', 'kill');
    await startTyping(tab, { prefix: 'kill', mark: '☠' });
    await waitUntil(async () => (await counts(tab)).replies >= 5, 5_000, '5 replies from pod-a');
    proxy.switchTo(serverB.port); // the load balancer's choice for new connections

    // The kernel resets a socket that is closed with data unread: stop pod-a first, so that the
    // messages the page sends now are in its socket, unread, when it is killed (as an OOM kill
    // finds what a busy process had not read yet).
    const [pipe] = proxy.webSockets({ open: true });
    assert.equal(pipe?.port, serverA.port, 'the page\'s WebSocket goes through the proxy to pod-a');
    serverA.child.kill('SIGSTOP');
    const sentBefore = pipe.toServer;
    const typedBefore = (await counts(tab)).typed;
    await waitUntil(async () => pipe.toServer > sentBefore && (await counts(tab)).typed >= typedBefore + 3, 5_000, 'messages sent to the stopped pod-a');
    serverA.child.kill('SIGKILL');
    assert.deepEqual(await within(5_000, serverA.exit, 'pod-a exit after SIGKILL'), { code: null, signal: 'SIGKILL' });

    // The page sees the reset as a close without a close frame and reconnects, to pod-b.
    await waitUntil(() => pipe.upEnd !== null, 5_000, 'the proxy saw pod-a\'s end');
    assert.equal(pipe.upEnd, 'ECONNRESET', 'pod-a\'s kernel reset the connection (passed on to the browser as a reset)');
    await waitUntil(async () => ((await counts(tab)).byInstance['pod-b'] ?? 0) >= 10, 15_000, '10 replies from pod-b');
    const typed = await stopTyping(tab);
    const rec = await assertEachAnsweredOnce(tab, typed);

    assert.deepEqual(rec.sockets[0].closed && [rec.sockets[0].closed.code, rec.sockets[0].closed.wasClean], [1006, false]);
    assert.equal(rec.sockets[0].closeCalled, null, 'the browser closed it, not the client');
    const states = rec.states.map((s) => s.state);
    const firstDown = rec.states.find((s) => s.state !== 'connecting' && s.state !== 'open');
    assert.deepEqual([firstDown.state, firstDown.code], ['reconnecting', 1006], `backoff after 1006: ${states}`);
    assert.ok(!states.includes('restarting'), `no restart delay without a 1012: ${states}`);
    assert.equal(states.at(-1), 'open');
    assert.deepEqual(rec.dead, [], 'the close was seen, not a silence');
    // What pod-a never read was re-sent, once, and answered by pod-b; nothing else was sent twice.
    assert.ok(rec.requeued.length >= 3, `re-queued: ${rec.requeued}`);
    for (const reply of rec.replies) {
      const requeued = rec.requeued.includes(reply.text);
      assert.equal(reply.sends, requeued ? 2 : 1, `${reply.text} sent ${reply.sends} times`);
      if (requeued) assert.equal(reply.instance, 'pod-b', `${reply.text} re-sent to pod-b`);
    }
    assert.ok(rec.peakLive <= 2, `at most two sockets at once (${rec.peakLive})`);
    t.diagnostic(
      `SIGKILL: ${typed.length} typed, ${rec.replies.filter((r) => r.instance === 'pod-a').length} answered by pod-a, ` +
        `${rec.requeued.length} re-sent to pod-b, back open ${rec.states.at(-1).at - firstDown.at} ms after the reset`,
    );
  } finally {
    await tab?.close();
    await proxy.close();
    serverA.child.kill('SIGKILL');
    serverB.child.kill('SIGKILL');
  }
});

test('SIGSTOP: the silence is caught within 2 x interval_ms, a handshake to the frozen server times out, the page moves on', async (t) => {
  const env = { ALIVE_INTERVAL: '500ms' };
  const serverA = await startServer({ instance: 'pod-a', env });
  const serverB = await startServer({ instance: 'pod-b', env });
  const proxy = await startProxy(serverA.port);
  let tab;
  try {
    tab = await openRecordedTab(context, `http://127.0.0.1:${proxy.port}/`, 'pod-a', 'freeze');
    await startTyping(tab, { prefix: 'frozen', mark: '❄', everyMs: 100 });
    await waitUntil(async () => (await counts(tab)).replies >= 5, 5_000, '5 replies from pod-a');
    // The load balancer has not noticed yet: the next new connection still goes to pod-a, those
    // after it to pod-b.
    proxy.routeNext(serverA.port);
    proxy.switchTo(serverB.port);
    const stoppedAt = Date.now();
    serverA.child.kill('SIGSTOP');

    // 1. The open socket: silent, declared dead.
    const dead = await waitUntil(async () => (await recording(tab)).dead[0], 5_000, 'the dead link');
    assert.equal(dead.limitMs, 1_000, '2 x interval_ms');
    // Never before the limit; after it, as soon as the page's timer runs: on two cores shared
    // with Chromium, node and two servers, that can be a second late, so the upper bounds are
    // generous (a watchdog that never fired would time out the wait above).
    assert.ok(dead.silentMs >= 1_000 && dead.silentMs < 3_000, `silent for ${dead.silentMs} ms`);
    assert.ok(dead.at - stoppedAt < 3_000, `declared dead ${dead.at - stoppedAt} ms after SIGSTOP`);
    // 2. The reconnect lands on frozen pod-a: TCP is accepted (the kernel's backlog), the upgrade
    // request is sent and never answered; the connect timeout gives it up.
    const hung = await waitUntil(() => proxy.webSockets()[1], 5_000, 'the reconnect');
    assert.equal(hung.port, serverA.port, 'the reconnect went to frozen pod-a');
    await waitUntil(async () => (await recording(tab)).sockets[1]?.closeCalled, 12_000, 'the connect timeout');
    assert.ok(hung.connected, 'the frozen server\'s kernel accepted the TCP connection');
    assert.ok(hung.toServer > 0 && hung.fromServer === 0, `upgrade sent (${hung.toServer} bytes), nothing came back`);
    // 3. The next attempt goes to pod-b.
    await waitUntil(async () => ((await counts(tab)).byInstance['pod-b'] ?? 0) >= 10, 15_000, '10 replies from pod-b');
    const typed = await stopTyping(tab);
    const rec = await assertEachAnsweredOnce(tab, typed);

    const [first, second, third] = rec.sockets;
    assert.deepEqual(first.closeCalled && [first.closeCalled.code, first.closeCalled.reason], [4000, 'no alive message']);
    assert.equal(second.openedAt, null, 'the handshake to the frozen server never completed');
    assert.deepEqual([second.closeCalled.code, second.closeCalled.reason], [4002, 'connect timeout']);
    const waited = second.closeCalled.at - second.at;
    assert.ok(waited >= 10_000 && waited < 13_000, `given up after ${waited} ms (connectTimeoutMs 10 s)`);
    assert.ok(third.openedAt, 'the third socket opened');
    assert.equal(rec.sockets.length, 3);
    assert.ok(rec.peakLive <= 2, `at most two sockets at once (${rec.peakLive})`);
    const states = rec.states.map((s) => s.state);
    assert.deepEqual(states, ['connecting', 'open', 'reconnecting', 'connecting', 'reconnecting', 'connecting', 'open'], `${states}`);
    // What pod-a never answered was re-sent to pod-b, once; the rest was sent once.
    assert.ok(rec.requeued.length >= 1, 'the message in flight at the freeze was re-queued');
    for (const reply of rec.replies) {
      assert.equal(reply.sends, rec.requeued.includes(reply.text) ? 2 : 1, `${reply.text} sent ${reply.sends} times`);
    }
    t.diagnostic(
      `SIGSTOP: dead after ${dead.silentMs} ms of silence (${dead.at - stoppedAt} ms after the signal); the handshake to the ` +
        `frozen server given up after ${waited} ms; ${typed.length} typed, ${rec.requeued.length} re-sent to pod-b`,
    );
  } finally {
    await tab?.close();
    await proxy.close();
    // The frozen one: SIGKILL ends a stopped process as well; nothing is left behind.
    serverA.child.kill('SIGKILL');
    serverB.child.kill('SIGKILL');
    await within(5_000, Promise.all([serverA.exit, serverB.exit]), 'both servers gone');
  }
});

test('no console errors but the browser\'s own failed-connection lines', () => {
  assert.deepEqual(unexpectedConsole, []);
});
