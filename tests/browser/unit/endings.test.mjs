// Unit tests of static/client.js: every way a pod ends (issue 20), each with nothing lost and nothing
// shown twice:
//   - no close frame (SIGKILL, OOM kill, crash: the kernel's EOF or RST, close 1006);
//   - silence (a frozen process, a lost node or partition: the socket stays open and says nothing),
//     mid-traffic, and a handshake that never completes (the frozen server's kernel still accepts
//     TCP through its backlog);
//   - a handover in progress when the old pod dies (1006) or freezes, the new socket opening or open;
//   - the short drain (Spot VM, eviction): the notice and the 1012 a moment apart;
//   - and all of these mixed at random, seeded.
// Run: node --test tests/browser/unit/*.test.mjs (every file), or name one file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULTS, STATES } from '../../../static/client.js';
import { reverseText } from '../../../static/protocol.js';
import { setup, scripted, alive, hello, goaway, handoverSetup } from './fakes.mjs';

/**
 * Nothing lost, nothing shown twice: each of `texts` (typed in this order) was answered once, with
 * its own reply; no reply event twice; nothing pending.
 */
function assertEachAnsweredOnce({ client, of }, texts) {
  const replies = of('reply');
  const seqs = replies.map((r) => r.message.seq);
  assert.equal(new Set(seqs).size, seqs.length, `no reply twice: ${seqs}`);
  for (const r of replies) assert.equal(r.reply, reverseText(r.message.text), `#${r.message.seq} got its own reply`);
  assert.deepEqual(
    replies.map((r) => r.message).sort((a, b) => a.seq - b.seq).map((m) => m.text),
    texts,
    'every message typed was answered',
  );
  assert.deepEqual(client.pending, [], 'nothing pending');
}

const texts = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

// --- no close frame ---------------------------------------------------------------------------------

test('no close frame (1006) mid-traffic: backoff with full jitter, unanswered re-sent in order, each answered once', () => {
  // random: 0.5 of the backoff cap each time.
  const t = setup({ random: scripted([], 0.5) });
  const { clock, client, sockets, of, states } = t;
  client.start();
  const a = sockets[0];
  a.open();
  a.receive(hello('pod-a'));
  const typed = texts('m', 5);
  for (const text of typed) client.send(text);
  a.answer(2);
  // SIGKILL: the kernel closes the socket (EOF, or RST with unread data); no close frame.
  a.serverClose(1006);
  let state = of('state').at(-1);
  assert.deepEqual([state.state, state.code, state.delayMs], ['reconnecting', 1006, 250], 'backoff, not the restart delay');
  assert.deepEqual(of('requeued').map((r) => r.messages.map((m) => m.text)), [['m3', 'm4', 'm5']]);
  typed.push('m6');
  client.send('m6'); // typed during the outage: pending
  a.receive(reverseText('m3')); // anything late from the dead socket is not taken
  assert.equal(of('reply').length, 2);
  // The first attempt fails as well (the pod's replacement is not ready): the backoff grows.
  clock.advance(250);
  sockets[1].serverClose(1006);
  state = of('state').at(-1);
  assert.deepEqual([state.state, state.code, state.delayMs], ['reconnecting', 1006, 500], 'attempt 1: random(0, 1 s)');
  clock.advance(500);
  const c = sockets[2];
  c.open();
  assert.deepEqual(c.sent, ['m3', 'm4', 'm5', 'm6'], 'unanswered first, in order, then the one typed meanwhile');
  c.receive(hello('pod-b'));
  c.answerAll();
  assertEachAnsweredOnce(t, typed);
  assert.deepEqual(of('reply').map((r) => [r.message.text, r.instance, r.message.sends]), [
    ['m1', 'pod-a', 1],
    ['m2', 'pod-a', 1],
    ['m3', 'pod-b', 2],
    ['m4', 'pod-b', 2],
    ['m5', 'pod-b', 2],
    ['m6', 'pod-b', 1],
  ]);
  assert.deepEqual(states(), ['connecting', 'open', 'reconnecting', 'connecting', 'reconnecting', 'connecting', 'open']);
  assert.equal(of('handover').length, 0);
});

// --- silence ----------------------------------------------------------------------------------------

test('silence mid-traffic: sending proves nothing; dead 2 x interval after the last message heard; in flight re-sent', () => {
  const t = setup();
  const { clock, client, sockets, of } = t;
  client.start();
  const a = sockets[0];
  a.open();
  a.receive(hello('pod-a', 500)); // limit 1 s
  const typed = texts('m', 4);
  for (const text of typed) {
    client.send(text);
    clock.advance(100);
    a.answerAll();
  }
  // Frozen (SIGSTOP) or cut off: the socket stays open and silent; the page keeps typing.
  for (const text of texts('f', 9)) {
    typed.push(text);
    clock.advance(100);
    client.send(text);
  }
  assert.deepEqual(a.sent, texts('f', 9), 'sent on the silent socket');
  clock.advance(99);
  assert.equal(of('dead').length, 0, '999 ms of silence: not yet');
  clock.advance(1);
  assert.deepEqual(of('dead'), [{ type: 'dead', silentMs: 1000, limitMs: 1000 }], 'what the page sends does not count');
  assert.deepEqual(a.closedWith, { code: 4000, reason: 'no alive message' });
  assert.equal(client.state, 'reconnecting');
  assert.deepEqual(of('requeued').at(-1).messages.map((m) => m.text), texts('f', 9));
  // The frozen server wakes up (SIGCONT) and answers on the socket given up: not taken.
  a.answerAll();
  a.serverClose(1000);
  assert.equal(of('reply').length, 4);
  assert.equal(client.state, 'reconnecting');
  clock.advance(of('state').at(-1).delayMs);
  sockets[1].open();
  assert.deepEqual(sockets[1].sent, texts('f', 9));
  sockets[1].answerAll();
  assertEachAnsweredOnce(t, typed);
});

test('a handshake that never completes (a frozen server still accepts TCP): connect timeout, backoff, next server', () => {
  assert.equal(DEFAULTS.connectTimeoutMs, 10_000);
  const t = setup({ random: scripted([0, 0.5]) });
  const { clock, client, sockets, of, states } = t;
  client.start();
  const a = sockets[0];
  a.open();
  a.receive(hello('pod-a', 500));
  client.send('m1');
  // pod-a freezes: its open socket is declared dead...
  clock.advance(1_000);
  assert.equal(of('dead').length, 1);
  clock.advance(0); // backoff random 0
  // ...and the reconnect lands on it again: the kernel completes TCP, the upgrade is never answered.
  const b = sockets[1];
  client.send('m2');
  assert.deepEqual(b.sent, [], 'nothing is sent before the socket is open');
  clock.advance(DEFAULTS.connectTimeoutMs - 1);
  assert.equal(client.state, 'connecting');
  clock.advance(1);
  assert.deepEqual(b.closedWith, { code: 4002, reason: 'connect timeout' });
  const state = of('state').at(-1);
  assert.deepEqual([state.state, state.reason, state.delayMs], ['reconnecting', 'connect timeout', 500], 'attempt 1: random(0, 1 s)');
  b.open(); // the frozen pod wakes up and finishes the handshake: too late, ignored
  b.receive(hello('pod-a'));
  assert.equal(client.state, 'reconnecting');
  clock.advance(500);
  const c = sockets[2];
  c.open();
  c.receive(hello('pod-b'));
  assert.deepEqual(c.sent, ['m1', 'm2']);
  c.answerAll();
  assertEachAnsweredOnce(t, ['m1', 'm2']);
  assert.deepEqual(states(), ['connecting', 'open', 'reconnecting', 'connecting', 'reconnecting', 'connecting', 'open']);
});

// --- a handover cut short -----------------------------------------------------------------------------

for (const ending of ['1006', 'silence']) {
  const end = (t, sock) => {
    if (ending === '1006') sock.serverClose(1006);
    else t.clock.advance(2_000); // hello's interval 1 s: dead after 2 s
  };

  test(`handover cut short (${ending}) while the new socket is opening: what the old one owed goes out on the new one`, () => {
    const t = handoverSetup();
    const { client, sockets, of, states, live } = t;
    const a = sockets[0];
    client.send('m1');
    client.send('m2');
    a.answer(1);
    a.receive(goaway('pod-a'));
    const b = sockets[1];
    client.send('m3'); // the new socket is not open: on the old one
    assert.deepEqual(a.sent, ['m2', 'm3']);
    end(t, a);
    assert.equal(client.state, 'connecting', 'waits for the new socket: no backoff, no restart delay');
    assert.equal(of('state').at(-1).code, ending === '1006' ? 1006 : null);
    assert.deepEqual(of('dead').length, ending === 'silence' ? 1 : 0);
    assert.deepEqual(of('requeued').map((r) => r.messages.map((m) => m.text)), [['m2', 'm3']]);
    client.send('m4');
    b.open();
    b.receive(hello('pod-b'));
    assert.deepEqual(b.sent, ['m2', 'm3', 'm4'], 'in order, once, on the new socket');
    assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved']);
    a.receive(reverseText('m2')); // late, from the old socket: not taken
    b.answerAll();
    assertEachAnsweredOnce(t, ['m1', 'm2', 'm3', 'm4']);
    assert.deepEqual(states(), ['connecting', 'open', 'connecting', 'open']);
    assert.deepEqual(live(), [b]);
    assert.equal(sockets.length, 2);
    assert.ok(sockets.peakLive <= 2);
  });

  test(`handover cut short (${ending}) after the move: what the old one owed goes out on the new one, the state stays open`, () => {
    const t = handoverSetup();
    const { client, sockets, of, states, live } = t;
    const a = sockets[0];
    for (const text of texts('m', 3)) client.send(text);
    a.answer(1);
    a.receive(goaway('pod-a'));
    const b = sockets[1];
    b.open();
    b.receive(hello('pod-b'));
    client.send('m4');
    // The old socket owes m2 and m3; the new one keeps proving itself alive.
    if (ending === 'silence') {
      for (let i = 0; i < 2; i++) {
        t.clock.advance(1_000);
        b.receive(alive('pod-b'));
      }
    } else {
      a.serverClose(1006);
    }
    assert.ok(a.readyState === 3, 'the old socket is gone');
    assert.deepEqual(b.sent, ['m4', 'm2', 'm3']);
    b.answerAll();
    assertEachAnsweredOnce(t, texts('m', 4));
    assert.deepEqual(states(), ['connecting', 'open'], 'never a state but open');
    assert.equal(of('dead').length, 0, 'the current link is fine');
    assert.deepEqual(live(), [b]);
    assert.ok(sockets.peakLive <= 2);
  });

  test(`handover cut short (${ending}) and the new socket never opens: backoff reconnect, nothing lost`, () => {
    const t = handoverSetup({ random: scripted([0.5, 0.5]) });
    const { clock, client, sockets, of, states } = t;
    const a = sockets[0];
    client.send('m1');
    a.receive(goaway('pod-a'));
    const b = sockets[1];
    end(t, a);
    // The new socket's handshake hangs too: the connect timeout (from its start) gives it up.
    clock.advance(DEFAULTS.connectTimeoutMs - (ending === 'silence' ? 2_000 : 0));
    assert.deepEqual(b.closedWith, { code: 4002, reason: 'connect timeout' });
    assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'failed']);
    const state = of('state').at(-1);
    assert.deepEqual([state.state, state.code, state.delayMs], ['reconnecting', ending === '1006' ? 1006 : null, 250]);
    clock.advance(250);
    sockets[2].open();
    assert.deepEqual(sockets[2].sent, ['m1']);
    sockets[2].answerAll();
    assertEachAnsweredOnce(t, ['m1']);
    assert.deepEqual(states(), ['connecting', 'open', 'connecting', 'reconnecting', 'connecting', 'open']);
  });
}

// --- the short drain ------------------------------------------------------------------------------------

for (const opensAfterMs of [150, 600]) {
  test(`short drain: notice, 1012 0.4 s later, typing throughout; the new socket opens after ${opensAfterMs} ms`, () => {
    const t = handoverSetup();
    const { clock, client, sockets, of, states, live } = t;
    const a = sockets[0];
    const typed = [];
    const sentAt = new Map();
    const type = () => {
      const text = `t${typed.length + 1}`;
      typed.push(text);
      sentAt.set(text, clock.t);
      client.send(text);
    };
    // pod-a answers a message 300 ms after it was sent (it is busy draining); pod-b at once.
    const answerOld = () => a.answer(a.sent.filter((text) => sentAt.get(text) <= clock.t - 300).length);
    for (let i = 0; i < 4; i++) type();
    a.receive(goaway('pod-a', 1000, 400));
    const b = sockets[1];
    for (let ms = 50; ms <= 1_000; ms += 50) {
      clock.advance(50);
      type();
      if (ms === opensAfterMs) {
        b.open();
        b.receive(hello('pod-b'));
      }
      if (a.readyState === 1) answerOld();
      // The drain's end: what pod-a has not answered by now it never will.
      if (ms === 400) a.serverClose(1012, 'server restarting; reconnect');
      if (b.readyState === 1) b.answerAll();
    }
    assertEachAnsweredOnce(t, typed);
    const resent = of('reply').filter((r) => r.message.sends > 1);
    assert.ok(resent.length >= 1, 'what pod-a could not answer went out again');
    assert.ok(resent.every((r) => r.instance === 'pod-b' && r.message.sends === 2), 'on the new socket, once');
    assert.ok(!states().includes('restarting') && !states().includes('reconnecting'), `${states()}`);
    assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved']);
    assert.deepEqual(live(), [b]);
    assert.ok(sockets.peakLive <= 2);
  });
}

// --- a socket opened by a handover ends later ---------------------------------------------------------

test('a socket opened by a handover that ends later without a close frame: the usual reconnect, no "failed" handover', () => {
  const t = handoverSetup({ random: scripted([0.5]) });
  const { client, sockets, of } = t;
  sockets[0].receive(goaway('pod-a'));
  const b = sockets[1];
  b.open();
  b.receive(hello('pod-b'));
  client.send('m1');
  b.serverClose(1006); // pod-b is SIGKILLed long after the move
  assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved'], 'the handover did not fail');
  const state = of('state').at(-1);
  assert.deepEqual([state.state, state.code, state.delayMs], ['reconnecting', 1006, 250]);
});

test('a socket that took over after the old one closed first: its own close decides the reconnect, not the old 1012', () => {
  const t = handoverSetup({ random: scripted([0.5]) });
  const { client, sockets, of } = t;
  const a = sockets[0];
  a.receive(goaway('pod-a'));
  a.serverClose(1012, 'server restarting; reconnect'); // before the new socket opened
  const b = sockets[1];
  b.open();
  b.receive(hello('pod-b'));
  client.send('m1');
  b.serverClose(1006); // pod-b is SIGKILLed later on
  const state = of('state').at(-1);
  assert.deepEqual([state.state, state.code, state.reason, state.delayMs], ['reconnecting', 1006, '', 250]);
  assert.deepEqual(of('handover').map((h) => h.phase), ['started', 'moved']);
});

// --- all of it at random --------------------------------------------------------------------------------

/** A small seeded PRNG (mulberry32): the same seed, the same run. */
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One seeded run: a user typing while servers end in every way (1006, 1012, silence, a handshake
 * that hangs, a notice followed or cut short), then healthy servers until the queue is empty.
 * Checks after every step: never more than two sockets, no reply twice, each reply its own; at
 * the end every message answered.
 */
function randomEndings(seed) {
  const roll = prng(seed);
  const pick = (n) => Math.floor(roll() * n);
  const t = setup({ random: prng(seed ^ 0x5bd1e995), connectTimeoutMs: 3_000 });
  const { clock, client, sockets, of } = t;
  const frozen = new Set();
  const name = (s) => `pod-${sockets.indexOf(s)}`;
  const openOnes = () => sockets.filter((s) => s.readyState === 1 && !frozen.has(s));
  const connecting = () => sockets.filter((s) => s.readyState === 0 && !frozen.has(s));
  const any = (list) => (list.length ? list[pick(list.length)] : null);
  const typed = [];
  const check = (where) => {
    assert.ok(sockets.filter((s) => s.readyState !== 3).length <= 2, `seed ${seed} ${where}: at most two sockets`);
    const seqs = of('reply').map((r) => r.message.seq);
    assert.equal(new Set(seqs).size, seqs.length, `seed ${seed} ${where}: no reply twice`);
    assert.ok(STATES.includes(client.state) && client.state !== 'stopped', `seed ${seed}: ${client.state}`);
  };
  const advance = (ms) => {
    for (let left = ms; left > 0; left -= 250) {
      clock.advance(Math.min(250, left));
      for (const s of openOnes()) s.receive(alive(name(s)));
    }
  };
  client.start();
  for (let step = 0; step < 150; step++) {
    const action = pick(11);
    let s;
    if (action <= 2) {
      const text = `r${typed.length + 1}`;
      typed.push(text);
      client.send(text);
    } else if (action === 3 && (s = any(connecting()))) {
      s.open();
      s.receive(hello(name(s)));
    } else if (action === 4 && (s = any(openOnes()))) {
      s.answer(pick(s.sent.length + 1));
    } else if (action === 5 && (s = any(openOnes()))) {
      s.receive(goaway(name(s), 1000, pick(5) * 200));
    } else if (action === 6 && (s = any(openOnes()))) {
      s.answer(pick(s.sent.length + 1)); // a drain: answers what it read, then 1012
      s.serverClose(1012, 'server restarting; reconnect');
    } else if (action === 7 && (s = any([...openOnes(), ...connecting()]))) {
      s.serverClose(1006); // SIGKILL
    } else if (action === 8 && (s = any([...openOnes(), ...connecting()]))) {
      frozen.add(s); // SIGSTOP or a partition: open and silent, or a handshake that hangs
    } else {
      advance(pick(1_500));
    }
    check(`step ${step}`);
  }
  // Healthy servers from now on: every handshake completes, every message is answered.
  for (let round = 0; round < 300 && (client.pending.length > 0 || client.state !== 'open'); round++) {
    for (const s of connecting()) {
      s.open();
      s.receive(hello(name(s)));
    }
    for (const s of openOnes()) s.answerAll();
    check(`heal ${round}`);
    advance(500);
  }
  assertEachAnsweredOnce(t, typed);
  return { typed: typed.length, sockets: sockets.length, resent: of('reply').filter((r) => r.message.sends > 1).length };
}

test('every ending mixed at random (300 seeds): nothing lost, nothing shown twice, never more than two sockets', (t) => {
  let typed = 0;
  let resent = 0;
  let opened = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const run = randomEndings(seed);
    typed += run.typed;
    resent += run.resent;
    opened += run.sockets;
  }
  assert.ok(resent > 100, `the runs re-sent messages (${resent}): the endings cut replies short`);
  t.diagnostic(`${typed} messages typed, ${resent} answered after a re-send, ${opened} sockets opened`);
});
