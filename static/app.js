// The page: renders the events of WsClient (client.js) and feeds it the user's messages and the
// browser's online/offline/visibility events. All connection logic lives in client.js.

import { WsClient } from './client.js';
import { webSocketUrl } from './protocol.js';

const MAX_ROWS = 200; // answered (or refused) rows beyond this are dropped from the page, oldest first
const MAX_TRACE = 500; // state labels kept in `trace`, newest last

const $ = (id) => document.getElementById(id);
const els = {
  state: $('state'),
  stateText: $('state-text'),
  stateDetail: $('state-detail'),
  retry: $('retry'),
  form: $('send-form'),
  input: $('text'),
  error: $('send-error'),
  instance: $('alive-instance'),
  phase: $('alive-phase'),
  age: $('alive-age'),
  uptime: $('alive-uptime'),
  lastClose: $('last-close'),
  handover: $('handover'),
  connections: $('connections'),
  counts: $('counts'),
  list: $('messages'),
};

const client = new WsClient({ url: webSocketUrl(location.href), online: navigator.onLine });

// For tests and for a look from the console: the client and every state label the page showed.
const trace = [];
window.wsdrain = { client, trace };

const rows = new Map(); // seq -> {li, meta, reply, connection}
const done = []; // seqs of the rows answered or refused, in that order: the first to drop
const counts = { pending: 0, answered: 0, refused: 0 }; // rows per kind of status
let stateInfo = { state: 'idle', retryAt: null };
let previousState = 'idle';
let opened = 0; // connections opened (by a reconnect or a handover)
let lastOpened = 0; // the id of the newest one counted: an id can be reported twice, ids only grow
let failed = 0; // connection attempts that never opened
let lastAlive = null;

// --- connection state ----------------------------------------------------------------------------

function stateWords(info) {
  switch (info.state) {
    case 'idle':
      return 'starting';
    case 'connecting':
      return 'connecting';
    case 'open':
      return 'open';
    case 'restarting':
      return 'server restarting';
    case 'reconnecting':
      return 'reconnecting';
    case 'offline':
      return 'offline';
    case 'stopped':
      return info.code ? `stopped: ${info.reason || 'closed by the server'} (${info.code})` : `stopped: ${info.reason}`;
    default:
      return info.state;
  }
}

function secondsLeft() {
  if (stateInfo.retryAt === null) return null;
  return Math.max(0, Math.ceil((stateInfo.retryAt - performance.now()) / 1000)); // the client's clock
}

/** The visible tail of the state: the countdown. Hidden from screen readers (it ticks). */
function stateDetail() {
  const left = secondsLeft();
  if (stateInfo.state === 'reconnecting') return left > 0 ? ` in ${left} s` : ' now';
  if (stateInfo.state === 'restarting') return left > 0 ? ` · reconnecting in ${left} s` : ' · reconnecting now';
  if (stateInfo.state === 'offline') return ' · waiting for the network';
  return '';
}

function renderState() {
  const detail = stateDetail();
  if (els.stateDetail.textContent !== detail) els.stateDetail.textContent = detail;
}

client.addEventListener('state', ({ detail }) => {
  stateInfo = detail;
  const words = stateWords(detail);
  els.state.dataset.state = detail.state;
  els.stateText.textContent = words;
  renderState();
  trace.push({ at: Date.now(), state: detail.state, text: els.state.textContent.trim(), code: detail.code });
  if (trace.length > MAX_TRACE) trace.splice(0, trace.length - MAX_TRACE);
  els.retry.hidden = !['reconnecting', 'restarting', 'offline', 'stopped'].includes(detail.state);
  if (detail.state !== 'open') clearServer(); // not the current server's any more
  if (detail.state === 'open') {
    countOpened(detail.connection);
  } else if (previousState === 'open' && detail.code !== null) {
    // How the last open connection ended (failed attempts are counted, not shown here).
    els.lastClose.textContent = `${detail.code}${detail.reason ? ` "${detail.reason}"` : ''}`;
  } else if (previousState === 'connecting' && detail.state !== 'connecting') {
    failed += 1;
  }
  previousState = detail.state;
  renderConnections();
});

function countOpened(connection) {
  if (connection > lastOpened) {
    opened += 1;
    lastOpened = connection;
  }
}

function renderConnections() {
  els.connections.textContent = `${opened} opened, ${failed} failed`;
}

els.retry.addEventListener('click', () => {
  if (client.state === 'stopped') client.start();
  else client.retryNow();
});

// --- alive ----------------------------------------------------------------------------------------

function instanceTag(name) {
  const tag = document.createElement('span');
  tag.className = 'tag instance';
  tag.textContent = name;
  // A colour per instance (FNV-1a hash, spread by the golden angle), so a rollout is visible.
  let hash = 0x811c9dc5;
  for (const ch of name) hash = Math.imul(hash ^ ch.codePointAt(0), 0x01000193) >>> 0;
  tag.style.setProperty('--hue', String(Math.round((hash * 137.508) % 360)));
  return tag;
}

function formatDuration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function renderAliveAge() {
  if (!lastAlive) return;
  const ago = Math.floor((performance.now() - lastAlive.at) / 1000); // the client's clock
  els.age.textContent = ago === 0 ? 'just now' : `${ago} s ago`;
}

/** No current server (a socket given up, a move under way): until the next alive message. */
function clearServer() {
  lastAlive = null;
  els.instance.textContent = '—';
  els.phase.textContent = '—';
  els.age.textContent = '—';
  els.uptime.textContent = '—';
}

client.addEventListener('alive', ({ detail }) => {
  lastAlive = detail;
  els.instance.replaceChildren(instanceTag(detail.instance));
  els.phase.textContent = detail.phase;
  els.uptime.textContent = formatDuration(detail.uptimeMs);
  renderAliveAge();
  if (detail.first) {
    // Replies that came on this connection before its first alive learn their instance now.
    for (const row of rows.values()) {
      if (row.connection === detail.connection && row.instance === null) {
        row.instance = detail.instance;
        renderMeta(row);
      }
    }
  }
});

// --- handover (the server's goaway notice) ---------------------------------------------------------

// The latest handover: {phase, from, to, connection}; `to` is learnt from the new socket's hello
// when it was not known at the move.
let handover = null;

function renderHandover() {
  if (!handover) return;
  const { phase, from, to } = handover;
  const parts = [];
  if (phase === 'started') {
    parts.push(document.createTextNode('moving off '), from ? instanceTag(from) : document.createTextNode('the server'), document.createTextNode('…'));
  } else if (phase === 'moved') {
    parts.push(document.createTextNode('moved to '), to ? instanceTag(to) : document.createTextNode('a new server'));
    if (from) parts.push(document.createTextNode(' from '), instanceTag(from));
  } else {
    // The old socket serves on until it closes; then the page reconnects as after any restart.
    parts.push(document.createTextNode('could not move off '), from ? instanceTag(from) : document.createTextNode('the server'));
  }
  els.handover.replaceChildren(...parts);
  els.handover.dataset.phase = phase;
}

client.addEventListener('handover', ({ detail }) => {
  handover = { ...detail };
  if (detail.phase === 'moved') {
    countOpened(detail.connection); // the page stayed 'open': no state event counted it
    if (!detail.to) clearServer(); // the old socket's server until the new one's hello
  } else if (detail.phase === 'failed' && client.state === 'open') {
    failed += 1; // (when not open, the state change that follows counts it)
  }
  renderConnections();
  renderHandover();
});

client.addEventListener('hello', ({ detail }) => {
  if (handover?.phase === 'moved' && handover.connection === detail.connection && !handover.to) {
    handover.to = detail.instance;
    renderHandover();
  }
});

client.addEventListener('dead', ({ detail }) => {
  els.lastClose.textContent = `no alive message for ${(detail.silentMs / 1000).toFixed(1)} s: link closed`;
});

// --- messages -------------------------------------------------------------------------------------

function renderMeta(row) {
  const parts = [];
  if (row.status === 'refused') {
    parts.push(document.createTextNode(`not sent again: ${row.refusedWhy}`));
  } else if (row.status === 'answered') {
    parts.push(document.createTextNode('served by '));
    parts.push(row.instance ? instanceTag(row.instance) : document.createTextNode('(instance not known yet)'));
    parts.push(document.createTextNode(` · round trip ${row.rttMs} ms`));
    if (row.message.sends > 1) parts.push(document.createTextNode(` · sent ${row.message.sends} times`));
  } else {
    const tag = document.createElement('span');
    tag.className = 'tag pending';
    tag.textContent = row.status === 'sent' ? 'sent, waiting for the reply' : 'pending';
    parts.push(tag);
    if (row.message.sends > 0 && row.status === 'pending') {
      parts.push(document.createTextNode(' · will be sent again'));
    }
  }
  row.meta.replaceChildren(...parts);
}

function addRow(message) {
  const li = document.createElement('li');
  li.className = 'message';
  li.dataset.seq = String(message.seq);
  const sent = document.createElement('div');
  sent.className = 'sent';
  const sentLabel = document.createElement('span');
  sentLabel.className = 'label';
  sentLabel.textContent = `#${message.seq} sent`;
  const sentText = document.createElement('span');
  sentText.className = 'text';
  sentText.textContent = message.text;
  sent.append(sentLabel, sentText);
  const reply = document.createElement('div');
  reply.className = 'reply';
  const replyLabel = document.createElement('span');
  replyLabel.className = 'label';
  replyLabel.textContent = 'reply';
  const replyText = document.createElement('span');
  replyText.className = 'reply-text';
  replyText.textContent = '…';
  reply.append(replyLabel, replyText);
  const meta = document.createElement('div');
  meta.className = 'meta';
  li.append(sent, reply, meta);
  const row = { li, meta, replyText, message, status: null, instance: null, connection: null, rttMs: null };
  rows.set(message.seq, row);
  setStatus(row, 'pending');
  els.list.prepend(li);
  trimRows();
}

/** 'pending' and 'sent' rows are pending; 'answered' and 'refused' ones are done. */
const kindOf = (status) => (status === 'answered' || status === 'refused' ? status : 'pending');

function setStatus(row, status) {
  if (row.status !== null) counts[kindOf(row.status)] -= 1;
  counts[kindOf(status)] += 1;
  row.status = status;
  row.li.dataset.status = status;
  renderMeta(row);
  if (kindOf(status) !== 'pending') {
    done.push(row.message.seq);
    trimRows(); // rows queued while over the cap wait until they are done before they can go
  }
  renderCounts();
}

function trimRows() {
  while (rows.size > MAX_ROWS && done.length > 0) {
    const seq = done.shift();
    const row = rows.get(seq);
    row.li.remove();
    rows.delete(seq);
    counts[kindOf(row.status)] -= 1;
  }
}

function renderCounts() {
  const refused = counts.refused > 0 ? `, ${counts.refused} refused` : '';
  els.counts.textContent = `${counts.answered} answered, ${counts.pending} pending${refused}`;
}

client.addEventListener('queued', ({ detail }) => addRow(detail.message));

client.addEventListener('sent', ({ detail }) => {
  const row = rows.get(detail.message.seq);
  if (row) setStatus(row, 'sent');
});

client.addEventListener('requeued', ({ detail }) => {
  for (const message of detail.messages) {
    const row = rows.get(message.seq);
    if (row && kindOf(row.status) === 'pending') setStatus(row, 'pending');
  }
});

client.addEventListener('reply', ({ detail }) => {
  const row = rows.get(detail.message.seq);
  if (!row || kindOf(row.status) !== 'pending') return; // never shown twice
  row.replyText.textContent = detail.reply;
  row.instance = detail.instance;
  row.connection = detail.connection;
  row.rttMs = Math.round(detail.rttMs);
  setStatus(row, 'answered');
});

client.addEventListener('rejected', ({ detail }) => {
  els.error.textContent = detail.reason;
  // A message the server refused (it was queued, so it has a row): done, not pending.
  const row = detail.message ? rows.get(detail.message.seq) : null;
  if (row && kindOf(row.status) === 'pending') {
    row.refusedWhy = detail.reason;
    row.replyText.textContent = '—';
    setStatus(row, 'refused');
  }
});

els.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = els.input.value;
  if (text === '') return;
  els.error.textContent = '';
  if (client.send(text)) els.input.value = '';
  els.input.focus();
});

// --- the browser's own signals --------------------------------------------------------------------

window.addEventListener('offline', () => client.setOnline(false));
window.addEventListener('online', () => client.setOnline(true));
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') client.wake();
});

// Countdown and "seconds since the last alive" tick on their own.
setInterval(() => {
  renderState();
  renderAliveAge();
}, 250);

renderCounts();
client.start();
