//! Running one connection: its reads and writes (with the read budget and the reads spared
//! where readiness is known), an alive message sent without a run, and the guard that turns a
//! panic into that connection's end.

use std::io::{self, Write};

use crate::app::context::Context;
use crate::app::lifecycle::EventLine;
use crate::app::metrics::OpenConnections;
use crate::connection::{Kind, NextIo, Verdict};
use crate::net::{Sender, Stream};
use crate::server::{Slot, Wake};

/// Runs one connection: writes what is queued, lets it serve what it has buffered, reads until
/// the socket would block (or the read budget runs out), and repeats.
///
/// Reads are spared where readiness is known. After an event that did not report the peer's
/// shutdown, a read that returns less than the buffer holds means the socket is empty for now:
/// the read that would only say `WouldBlock` is skipped (with edge-triggered readiness, data or
/// a FIN arriving later raises a new event). Without an event (a timer, the drain), the socket
/// is read only if an earlier run left bytes in it unread.
pub(super) fn drive<S: Stream>(
    s: &mut Slot<S>,
    ctx: &mut Context,
    scratch: &mut [u8],
    reads_per_event: usize,
    wake: Wake,
) -> Verdict {
    let mut reads = 0;
    let trust_short_read = wake == Wake::Event { peer_closed: false };
    let mut drained = matches!(wake, Wake::Internal | Wake::Deadline) && !s.unread;
    loop {
        if s.conn.output_len() > 0 {
            let mut sender = Sender {
                last: s.conn.closes_after_output(),
                stream: &mut s.stream,
            };
            match s.conn.output().write_to(&mut sender) {
                Ok(n) => {
                    ctx.metrics.bytes_out += n as u64;
                    s.conn.on_written(n, ctx.now);
                }
                Err(e) => {
                    log::debug!("conn #{}: write failed: {e}", s.conn.id());
                    return Verdict::Close;
                }
            }
        }
        match s.conn.next_io(ctx) {
            NextIo::Continue => continue,
            NextIo::Close => return Verdict::Close,
            NextIo::ShutdownWrite => {
                if s.stream.shutdown_write().is_err() {
                    return Verdict::Close;
                }
                s.conn.on_write_shut(ctx.now);
                continue;
            }
            NextIo::InputClosed => return Verdict::Keep,
            NextIo::Paused => {
                s.unread = true;
                return Verdict::Keep;
            }
            NextIo::Read => {}
        }
        if drained {
            s.unread = false;
            return s.conn.on_input_drained(ctx);
        }
        if reads == reads_per_event {
            s.rerun = true;
            s.unread = true;
            return Verdict::Keep;
        }
        reads += 1;
        match s.stream.read(scratch) {
            Ok(0) => {
                if s.conn.on_input_closed() == Verdict::Close {
                    return Verdict::Close;
                }
            }
            Ok(n) => {
                ctx.metrics.bytes_in += n as u64;
                drained = trust_short_read && n < scratch.len();
                if s.conn.on_bytes(&mut scratch[..n], ctx) == Verdict::Close {
                    return Verdict::Close;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                s.unread = false;
                return s.conn.on_input_drained(ctx);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("conn #{}: read failed: {e}", s.conn.id());
                return Verdict::Close;
            }
        }
    }
}

/// Sends the alive `frame` straight to the socket of a connection whose only due deadline is
/// its alive message ([`crate::connection::Connection::only_alive_due`]): one send from the
/// frame the loop made for this moment, nothing allocated or copied, unless the socket takes
/// only part of it (the rest is queued, as any output the socket could not take).
pub(super) fn send_alive<S: Stream>(s: &mut Slot<S>, ctx: &mut Context, frame: &[u8]) -> Verdict {
    let mut sender = Sender {
        stream: &mut s.stream,
        last: false,
    };
    // As the output queue writes (`OutQueue::write_to`): on until the frame is out or the socket
    // would block, so that a short write leaves the connection as a run would.
    let mut written = 0;
    while written < frame.len() {
        match sender.write(&frame[written..]) {
            Ok(0) => {
                log::debug!("conn #{}: write failed: wrote zero bytes", s.conn.id());
                return Verdict::Close;
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("conn #{}: write failed: {e}", s.conn.id());
                return Verdict::Close;
            }
        }
    }
    ctx.metrics.bytes_out += written as u64;
    s.conn.on_alive_sent(frame, written, ctx);
    Verdict::Keep
}

/// The open count a kind of connection is counted in.
pub(super) fn count_of(open: &mut OpenConnections, kind: Kind) -> &mut usize {
    match kind {
        Kind::Http => &mut open.http,
        Kind::WebSocket => &mut open.websocket,
        Kind::Admin => &mut open.admin,
    }
}

/// Runs one connection's handler. A panic in it is a bug, but it costs that connection only:
/// its client is told (1011, or 500) and dropped while the loop goes on serving everyone else,
/// instead of the pod losing every connection at once. (The panic message itself is printed
/// by the default hook, just before the log line.)
pub(super) fn guarded<S>(
    s: &mut Slot<S>,
    ctx: &mut Context,
    handler: impl FnOnce(&mut Slot<S>, &mut Context) -> Verdict,
) -> Verdict {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(s, ctx))) {
        Ok(verdict) => verdict,
        Err(_) => {
            log::error!(
                "{}",
                EventLine::new("internal_error")
                    .field("conn", s.conn.id())
                    .field("cause", "the panic above")
                    .field("closing", "this connection only")
            );
            s.conn.internal_error(ctx)
        }
    }
}
