//! Accepting: take every waiting connection, admit it under the connection caps (or answer 503
//! at once), and keep refusing cleanly when descriptors run out (the spare descriptor).

use std::io;

use crate::app::lifecycle::EventLine;
use crate::app::metrics::RejectReason;
use crate::base::time::Millis;
use crate::base::time::after;
use crate::connection::{Connection, Verdict};
use crate::net::{self, Listener, Net};
use crate::server::drive::count_of;
use crate::server::{ACCEPT_RETRY, Server, Slot, WARNING_INTERVAL};

impl<N: Net> Server<N> {
    pub(super) fn accept_all(&mut self, listener: Listener) {
        loop {
            if listener == Listener::Public && !self.public_open {
                return; // closed for the drain
            }
            match self.net.accept(listener) {
                Ok(stream) => self.admit(stream, listener),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if net::is_fd_exhaustion(&e) => {
                    if !self.shed_one(listener, &e) {
                        return;
                    }
                }
                Err(e) if net::is_transient_accept_error(&e) => {}
                Err(e) => {
                    log::warn!("accept on the {} port failed: {e}", listener.as_str());
                    self.accept_retry_at = Some(after(self.ctx.now, ACCEPT_RETRY));
                    return;
                }
            }
        }
    }

    /// Out of descriptors: use the spare one to accept a waiting client, refuse it, take the
    /// spare back. Returns whether to keep accepting (false when the backlog is empty, or when
    /// there was no spare: then the loop retries after [`ACCEPT_RETRY`]).
    fn shed_one(&mut self, listener: Listener, e: &io::Error) -> bool {
        let now = self.ctx.now;
        if self.fd_warning.allow(now) {
            log::warn!(
                "{}",
                EventLine::new("out_of_descriptors")
                    .field("error", e)
                    .field("open", self.conns.len())
                    .field("refusing", "new clients")
            );
        }
        if !self.net.release_spare() {
            self.net.refill_spare();
            self.accept_retry_at = Some(after(now, ACCEPT_RETRY));
            return false;
        }
        let more = match self.net.accept(listener) {
            Ok(stream) => {
                self.ctx.metrics.bytes_out += net::reject(stream, &mut self.scratch);
                self.ctx.metrics.rejected(RejectReason::FdExhausted);
                true
            }
            // EMFILE hides an empty backlog; with a free descriptor, WouldBlock reveals it.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                log::warn!("accept on the {} port failed: {e}", listener.as_str());
                self.accept_retry_at = Some(after(now, ACCEPT_RETRY));
                false
            }
        };
        self.net.refill_spare();
        more
    }

    /// A port at its cap refuses clients with 503: an operator sees it at warn, once a second
    /// at most, with the refusals since the last such line (each one is at debug).
    fn warn_full(&mut self, listener: Listener, cap: usize) {
        self.refused_full_since_warning += 1;
        if !self.full_warning.allow(self.ctx.now) {
            return;
        }
        log::warn!(
            "{}",
            EventLine::new("connections_full")
                .field("port", listener.as_str())
                .field("cap", cap)
                .field("websockets", self.ctx.open.websocket)
                .field("http", self.ctx.open.http)
                .field("admin", self.ctx.open.admin)
                .field("refused", self.refused_full_since_warning)
        );
        self.refused_full_since_warning = 0;
    }

    fn admit(&mut self, mut stream: N::Stream, listener: Listener) {
        let (open, cap) = match listener {
            Listener::Public => (
                self.ctx.open.http,
                self.ctx.max_public.saturating_sub(self.ctx.open.websocket),
            ),
            Listener::Admin => (self.ctx.open.admin, self.ctx.config.max_admin_connections),
        };
        if open >= cap {
            self.ctx.metrics.bytes_out += net::reject(stream, &mut self.scratch);
            self.ctx.metrics.rejected(RejectReason::MaxConnections);
            log::debug!("{} port full ({cap}): answered 503", listener.as_str());
            self.warn_full(listener, cap);
            return;
        }
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if let Err(e) = self.net.register(&mut stream, slot) {
            // The poll refused it (e.g. fs.epoll.max_user_watches reached): the client is told,
            // as at the connection cap, rather than dropped without a word.
            log::warn!("cannot register a connection with the poll: {e}; answered 503");
            self.ctx.metrics.bytes_out += net::reject(stream, &mut self.scratch);
            return;
        }
        self.ctx.metrics.accepted(listener);
        self.next_generation = self.next_generation.wrapping_add(1);
        let conn = Connection::new(self.next_generation, listener, self.ctx.now);
        let counted_as = conn.kind();
        *count_of(&mut self.ctx.open, counted_as) += 1;
        entry.insert(Slot {
            stream,
            conn,
            counted_as,
            unread: true,
            rerun: false,
        });
        log::debug!(
            "conn #{}: accepted on the {} port",
            self.next_generation,
            listener.as_str()
        );
        self.after_run(slot, Verdict::Keep);
    }
}

/// A warning logged at most once per [`WARNING_INTERVAL`]: refusals can come by the thousand a
/// second, and each is at debug already.
#[derive(Debug, Default)]
pub(super) struct Throttled {
    last: Option<Millis>,
}

impl Throttled {
    /// Whether a line may be logged at `now` (if so, it counts as logged then).
    fn allow(&mut self, now: Millis) -> bool {
        if self.last.is_some_and(|t| now < after(t, WARNING_INTERVAL)) {
            return false;
        }
        self.last = Some(now);
        true
    }
}
