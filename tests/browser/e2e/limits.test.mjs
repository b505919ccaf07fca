// Browser tests of the page's limits, in headless Chromium against real wsdrain processes:
//   - a message the server refuses: its MAX_MESSAGE_SIZE (256 B) is below the page's own limit
//     (64 KiB), so the server closes with 1009 on the long message; the page drops that one
//     message, says why, reconnects, and what was typed after it is answered. Sent again, the
//     message would close every new socket the same way, and nothing after it be answered;
//   - the message list keeps the newest 200 answered rows, the counts those it shows.
// Run through tests/tiers/browser.sh (see lib.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { finish, launchBrowser, openRecordedTab, recording, startServer, unexpectedConsole, waitUntil } from './lib.mjs';

let context;

before(async () => {
  context = await launchBrowser();
});

after(() => finish('limits', context));

test('a message over the server MAX_MESSAGE_SIZE is refused once; the page goes on without it', async () => {
  const server = await startServer({ instance: 'pod-r', env: { MAX_MESSAGE_SIZE: '256B' } });
  const tab = await openRecordedTab(context, `http://127.0.0.1:${server.port}/`, 'pod-r', 'refused');
  const input = tab.getByRole('textbox', { name: 'Message' });
  for (const text of ['before', 'x'.repeat(300), 'after']) {
    await input.fill(text);
    await input.press('Enter');
  }
  const statuses = () =>
    tab.$$eval('#messages li', (lis) => lis.reverse().map((li) => [li.querySelector('.text').textContent.length, li.dataset.status]));
  await waitUntil(async () => (await statuses()).every(([, status]) => status === 'answered' || status === 'refused'), 10_000, 'every row answered or refused');
  assert.deepEqual(await statuses(), [
    [6, 'answered'],
    [300, 'refused'],
    [5, 'answered'],
  ]);
  assert.equal(await tab.locator('#counts').textContent(), '2 answered, 0 pending, 1 refused');
  // The row says why (the line under the input is for the latest message typed only).
  assert.match(await tab.locator('#messages li[data-status="refused"] .meta').textContent(), /^not sent again: the server refused it \(close 1009/);
  const rec = await recording(tab);
  assert.deepEqual(rec.sockets.map((s) => s.closed?.code ?? null), [1009, null], 'one socket closed by the refusal, the next one open');
  // 'after' went out on the first socket or the next, as the typing and the 1009 fell; never again
  // the refused one.
  assert.ok(!rec.requeued.includes('x'.repeat(300)), `re-sent: ${rec.requeued}`);
  assert.equal(rec.states.at(-1).state, 'open');
  assert.deepEqual(unexpectedConsole.filter((line) => line.startsWith('[refused]')), []);
  await tab.close();
});

test('the list keeps the newest 200 answered rows and counts what it shows', async () => {
  const server = await startServer({ instance: 'pod-l' });
  const tab = await openRecordedTab(context, `http://127.0.0.1:${server.port}/`, 'pod-l', 'rows');
  // 250 messages at once, through the page's own client (typing them would take a while).
  await tab.evaluate(() => {
    for (let i = 1; i <= 250; i++) window.wsdrain.client.send(`row ${i}`);
  });
  await waitUntil(async () => (await recording(tab)).replies.length === 250, 10_000, '250 replies');
  const shown = await tab.$$eval('#messages li', (lis) => lis.map((li) => [li.dataset.seq, li.dataset.status]));
  assert.equal(shown.length, 200);
  assert.deepEqual(shown[0], ['250', 'answered'], 'the newest first');
  assert.deepEqual(shown.at(-1), ['51', 'answered'], 'the oldest 50 dropped');
  assert.equal(await tab.locator('#counts').textContent(), '200 answered, 0 pending');
  assert.deepEqual(unexpectedConsole.filter((line) => line.startsWith('[rows]')), []);
  await tab.close();
});
