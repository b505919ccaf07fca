// What the page's client (client.js, `WsClient`) tells the page: the states it is in and the events
// it dispatches, each with its data in `event.detail`:
//
//   state    {state, code, reason, retryAt, delayMs, attempt, connection}
//                                                               connection state changed
//   queued   {message}                                          a message was accepted
//   sent     {message}                                          a message went out on a socket
//   requeued {messages}                                         sent, unanswered, socket gone: pending
//   reply    {message, reply, rttMs, instance, connection}      a message was answered (once)
//   hello    {instance, phase, intervalMs, uptimeMs, handoverMs, at, connection}
//                                                               the current socket's server said who it is
//   alive    {instance, phase, intervalMs, uptimeMs, event, at, connection, first}
//                                                               any alive message of the current socket
//                                                               (event: 'hello', 'goaway' or null)
//   handover {phase, from, to, connection, fromConnection, reason}
//                                                               the server asked to move (goaway):
//                                                               phase 'started' (a second socket is
//                                                               being opened), 'moved' (new messages go
//                                                               on it; `to` is null until its hello) or
//                                                               'failed' (the old socket serves on until
//                                                               it closes; then the usual reconnect)
//   dead     {silentMs, limitMs}                                no alive message in time: link closed
//   rejected {text, reason, message}                            a message refused: by send() (too big,
//                                                               or maxPending waiting; no message), or
//                                                               by the server (close 1009/1007/1003
//                                                               while it was the first in flight:
//                                                               `message`, no longer queued)

/** The states a client is in; the page shows each in words. */
export const STATES = Object.freeze([
  'idle', // not started
  'connecting', // a socket is being opened
  'open', // connected (also while handing over to a second socket)
  'restarting', // the server closed with 1012/1001; waiting a short random time to reconnect
  'reconnecting', // waiting for the backoff delay (retryAt) to reconnect
  'offline', // the browser says it is offline: not trying until it is online again (or retryNow())
  'stopped', // the server closed with 4xxx, or stop() was called: not trying (see code/reason)
]);

/** The data of an event, in `event.detail` (like CustomEvent, which older Node lacks). */
export class ClientEvent extends Event {
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

