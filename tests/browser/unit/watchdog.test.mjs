// Unit tests of static/client.js: dead-link detection (no message for 2 x interval_ms) and the
// connect timeout.
// Run: node --test tests/browser/unit/*.test.mjs (every file), or name one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS } from '../../../static/client.js';
import { setup, alive } from './fakes.mjs';

// --- dead-link detection ----------------------------------------------------------------------------

test('no alive message for 2x its interval: close and reconnect', () => {
  const { clock, client, sockets, last, of } = setup();
  client.start();
  last().open();
  clock.advance(9_999);
  assert.equal(client.state, 'open', 'no alive yet: watched with the default 5 s interval');
  last().receive(alive('pod-a', 1000));
  clock.advance(1_500);
  last().receive(alive('pod-a', 1000)); // on time
  clock.advance(1_999);
  assert.equal(client.state, 'open');
  assert.equal(of('dead').length, 0);
  const old = last();
  clock.advance(1);
  assert.equal(of('dead').length, 1);
  assert.deepEqual(of('dead')[0], { type: 'dead', silentMs: 2000, limitMs: 2000 });
  assert.ok(old.closedWith, 'the dead socket is closed');
  assert.equal(client.state, 'reconnecting');
  // Late events of the given-up socket are ignored.
  old.receive(alive('pod-a', 1000));
  old.serverClose(1006);
  assert.equal(client.state, 'reconnecting');
  clock.advance(of('state').at(-1).delayMs);
  assert.equal(sockets.length, 2);
});

test('open, then no message at all for 2x the default interval: close and reconnect', () => {
  // A server that freezes right after the handshake never sends its first alive message.
  const { clock, client, sockets, last, of } = setup();
  assert.equal(DEFAULTS.aliveIntervalMs, 5_000, "the server's default ALIVE_INTERVAL");
  client.start();
  const frozen = last();
  frozen.open();
  clock.advance(9_999);
  assert.equal(client.state, 'open');
  assert.equal(of('dead').length, 0);
  clock.advance(1);
  assert.deepEqual(of('dead'), [{ type: 'dead', silentMs: 10_000, limitMs: 10_000 }]);
  assert.deepEqual(frozen.closedWith, { code: 4000, reason: 'no alive message' });
  assert.equal(client.state, 'reconnecting');
  clock.advance(of('state').at(-1).delayMs);
  assert.equal(sockets.length, 2, 'reconnected');
});

test('a new connection is watched with the interval of the last alive message, before its own', () => {
  const { clock, client, sockets, last, of } = setup();
  client.start();
  last().open();
  last().receive(alive('pod-a', 1000));
  last().serverClose(1012);
  clock.advance(of('state').at(-1).delayMs);
  const frozen = last();
  frozen.open();
  clock.advance(1_999);
  assert.equal(of('dead').length, 0);
  clock.advance(1);
  assert.deepEqual(of('dead'), [{ type: 'dead', silentMs: 2_000, limitMs: 2_000 }]);
  assert.ok(frozen.closedWith);
  clock.advance(of('state').at(-1).delayMs);
  assert.equal(sockets.length, 3);
});

test('before the first alive, any message from the server keeps the link alive', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  for (let i = 0; i < 5; i++) {
    clock.advance(9_000);
    client.send(`m${i}`);
    last().answerAll();
  }
  assert.equal(of('dead').length, 0);
  assert.equal(client.state, 'open');
  clock.advance(10_000);
  assert.equal(of('dead').length, 1, 'then silence is still caught');
});

test('any message from the server proves the link alive', () => {
  const { clock, client, last, of } = setup();
  client.start();
  last().open();
  last().receive(alive('pod-a', 1000));
  client.send('x');
  for (let i = 0; i < 10; i++) {
    clock.advance(1_500);
    client.send(`m${i}`);
    last().answerAll(); // the server skips alive messages while it has output pending
  }
  assert.equal(of('dead').length, 0);
  assert.equal(client.state, 'open');
});

test('a socket that never opens is given up after the connect timeout', () => {
  const { clock, client, sockets } = setup({ connectTimeoutMs: 5_000 });
  client.start();
  clock.advance(4_999);
  assert.equal(client.state, 'connecting');
  clock.advance(1);
  assert.equal(client.state, 'reconnecting');
  assert.ok(sockets[0].closedWith);
});

