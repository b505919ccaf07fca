// The messages the page's client (client.js) was given and has no reply for yet, in the order they
// were typed. Each has a sequence number; what is not in flight on a socket is "unsent", and goes
// out first, in order, once a socket is open.

export class MessageQueue {
  constructor() {
    this._all = []; // every unanswered message, in sequence order
    this._unsent = []; // the ones not in flight on any socket, in sequence order
    this._nextSeq = 1;
  }

  /** Unanswered messages, in order (the first ones may be waiting for their reply). */
  get pending() {
    return this._all.slice();
  }

  /** How many messages are unanswered. */
  get size() {
    return this._all.length;
  }

  /** A new message ({seq, text, queuedAt, sentAt, sends}), queued at `now`, not yet sent. */
  add(text, now) {
    const message = { seq: this._nextSeq++, text, queuedAt: now, sentAt: null, sends: 0 };
    this._all.push(message);
    this._unsent.push(message);
    return message;
  }

  /** The first message not in flight, or null. */
  nextUnsent() {
    return this._unsent.length > 0 ? this._unsent[0] : null;
  }

  /** nextUnsent() went out on a socket at `now`: it is in flight, no longer unsent. Returns it. */
  takeNextUnsent(now) {
    const message = this._unsent.shift();
    message.sentAt = now;
    message.sends += 1;
    return message;
  }

  /** Answered, or refused by the server: no longer queued. */
  remove(message) {
    const at = this._all.indexOf(message);
    if (at >= 0) this._all.splice(at, 1);
  }

  /** Sent, but the socket is gone unanswered: they go out again, in sequence order. */
  requeue(messages) {
    this._unsent = [...this._unsent, ...messages].sort((a, b) => a.seq - b.seq);
  }
}
