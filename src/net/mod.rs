//! Layer 1, the sockets; uses nothing else of this crate. The [`Net`] and [`Stream`] traits the
//! loop works through and their mio implementation ([`MioNet`]: listeners with an explicit
//! backlog, registered with the poll), which [`Listener`] a connection came from, the open-files
//! limit, and the spare descriptor that lets the server refuse clients even when descriptors run
//! out. The simulation (`tests/simulation/`) implements the same traits over in-memory sockets,
//! so the loop's logic runs unchanged against it.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Which listener a connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The public port (`PORT`): static files and `/ws`; what the internet reaches.
    Public,
    /// The admin port (`ADMIN_PORT`): probes, metrics, the preStop hook; never exposed.
    Admin,
}

impl Listener {
    /// Label value (`public`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Admin => "admin",
        }
    }
}

/// The poll token of the public listener.
pub(crate) const PUBLIC_TOKEN: Token = Token(usize::MAX - 1);
/// The poll token of the admin listener.
pub(crate) const ADMIN_TOKEN: Token = Token(usize::MAX - 2);

/// A connected, non-blocking socket as the loop uses it.
pub trait Stream: Read + Write {
    /// Shuts down the sending side (the peer reads EOF after what was sent).
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Sends bytes. `last`: the socket is closed right after them, so the kernel may hold a
    /// short tail until the close and send the FIN in the same segment as the last data: one
    /// packet (and one wake-up of the peer) fewer per connection.
    fn send(&mut self, bufs: &[IoSlice<'_>], last: bool) -> io::Result<usize> {
        let _ = last;
        self.write_vectored(bufs)
    }
}

impl Stream for TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn send(&mut self, bufs: &[IoSlice<'_>], last: bool) -> io::Result<usize> {
        // send(2)/sendmsg(2) rather than write(2)/writev(2): the socket layer directly, without
        // the file layer's checks and notifications. MSG_NOSIGNAL: a peer that is gone is an
        // error, not SIGPIPE. MSG_MORE: a short tail waits for the close's FIN (tcp_send_fin
        // puts the FIN on an unsent tail segment).
        let flags = libc::MSG_NOSIGNAL | if last { libc::MSG_MORE } else { 0 };
        let socket = SockRef::from(&*self);
        match bufs {
            [one] => socket.send_with_flags(one, flags),
            _ => socket.send_vectored_with_flags(bufs, flags),
        }
    }
}

/// A stream written through [`Stream::send`].
pub struct Sender<'a, S> {
    /// The socket.
    pub stream: &'a mut S,
    /// The socket is closed right after these bytes.
    pub last: bool,
}

impl<S: Stream> Write for Sender<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.send(&[IoSlice::new(buf)], self.last)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream.send(bufs, self.last)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The listeners and the readiness registry the loop works with. Readiness is edge-triggered:
/// a registered stream reports an event when it becomes readable or writable, not while it is.
pub trait Net {
    /// A connection's socket.
    type Stream: Stream;
    /// Accepts one waiting connection: `WouldBlock` when there is none (or the listener is
    /// closed), EMFILE/ENFILE when descriptors ran out.
    fn accept(&mut self, listener: Listener) -> io::Result<Self::Stream>;
    /// Starts readiness events for `stream`, both directions, under the slab slot `slot`.
    fn register(&mut self, stream: &mut Self::Stream, slot: usize) -> io::Result<()>;
    /// Closes a listener: from now on its connections are refused by the kernel.
    fn close_listener(&mut self, listener: Listener);
    /// Frees the spare descriptor so one accept can succeed; false if none was held.
    fn release_spare(&mut self) -> bool;
    /// Takes the spare descriptor again, if it is not held.
    fn refill_spare(&mut self);
}

/// The real sockets: two mio listeners registered with `poll`, and a spare descriptor.
#[derive(Debug)]
pub struct MioNet {
    /// The poll every socket is registered with (the loop also registers its signal pipe).
    pub poll: Poll,
    public: Option<TcpListener>,
    admin: TcpListener,
    spare: SpareFd,
}

impl MioNet {
    /// Binds both listeners and registers them with a new poll.
    pub fn bind(public_addr: SocketAddr, admin_addr: SocketAddr, backlog: u32) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut public =
            listen(public_addr, backlog).map_err(|e| annotate(e, "PORT", public_addr))?;
        let mut admin =
            listen(admin_addr, backlog).map_err(|e| annotate(e, "ADMIN_PORT", admin_addr))?;
        poll.registry()
            .register(&mut public, PUBLIC_TOKEN, Interest::READABLE)?;
        poll.registry()
            .register(&mut admin, ADMIN_TOKEN, Interest::READABLE)?;
        Ok(MioNet {
            poll,
            public: Some(public),
            admin,
            spare: SpareFd::new(),
        })
    }

    /// The bound address of a listener (`None` once closed).
    pub fn local_addr(&self, listener: Listener) -> Option<SocketAddr> {
        match listener {
            Listener::Public => self.public.as_ref()?.local_addr().ok(),
            Listener::Admin => self.admin.local_addr().ok(),
        }
    }
}

impl Net for MioNet {
    type Stream = TcpStream;

    fn accept(&mut self, listener: Listener) -> io::Result<TcpStream> {
        let listener = match listener {
            Listener::Public => self.public.as_ref(),
            Listener::Admin => Some(&self.admin),
        };
        let Some(listener) = listener else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        // TCP_NODELAY comes from the listener (see `listen`): no setsockopt per connection.
        let (stream, _) = listener.accept()?;
        Ok(stream)
    }

    fn register(&mut self, stream: &mut TcpStream, slot: usize) -> io::Result<()> {
        // Both directions, once: edge-triggered, so no epoll_ctl is needed while it lives.
        self.poll
            .registry()
            .register(stream, Token(slot), Interest::READABLE | Interest::WRITABLE)
    }

    fn close_listener(&mut self, listener: Listener) {
        if listener == Listener::Public
            && let Some(mut listener) = self.public.take()
        {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    fn release_spare(&mut self) -> bool {
        self.spare.release()
    }

    fn refill_spare(&mut self) {
        self.spare.refill();
    }
}

fn annotate(e: io::Error, setting: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot listen on {addr} ({setting}): {e}"),
    )
}

/// A non-blocking listener with `SO_REUSEADDR` and the given backlog (mio's own `bind` fixes the
/// backlog at 128, too small for a reconnect storm after a rollout). `TCP_NODELAY` is set here
/// once: Linux copies it to every socket the listener accepts, which saves a setsockopt per
/// connection (small replies must not wait for Nagle's algorithm).
pub(crate) fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(TcpListener::from_std(socket.into()))
}

/// The open-files limit before and after raising it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FdLimits {
    /// Soft limit found at start.
    pub soft_before: u64,
    /// Soft limit now.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: every socket is a descriptor.
pub(crate) fn raise_fd_limit() -> io::Result<FdLimits> {
    let (soft_before, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    let mut soft = soft_before;
    if soft < hard {
        match rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard) {
            Ok(()) => soft = hard,
            Err(e) => log::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}"),
        }
    }
    Ok(FdLimits {
        soft_before,
        soft,
        hard,
    })
}

/// Whether an accept error means the process or system is out of descriptors.
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether an accept error concerns only that one connection (try the next).
pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(libc::EPROTO | libc::EPERM))
}

/// A descriptor held in reserve. When accept fails with EMFILE, the loop closes it, accepts the
/// waiting client, answers 503 and closes it, then takes the descriptor back: the backlog is
/// emptied instead of left to hang, and the listener does not stay readable in a busy loop.
/// An unbound UDP socket is used because it needs no filesystem (distroless, chroot).
#[derive(Debug)]
pub(crate) struct SpareFd(Option<Socket>);

impl SpareFd {
    /// Takes a descriptor.
    pub fn new() -> Self {
        let mut spare = SpareFd(None);
        spare.refill();
        spare
    }

    /// Gives the descriptor up so one `accept` can succeed; false if there was none.
    pub fn release(&mut self) -> bool {
        self.0.take().is_some()
    }

    /// Takes a descriptor again if it has none.
    pub fn refill(&mut self) {
        if self.0.is_none() {
            self.0 = Socket::new(Domain::IPV4, Type::DGRAM, None).ok();
        }
    }
}

impl Default for SpareFd {
    fn default() -> Self {
        Self::new()
    }
}

/// The 503 written straight to a connection refused at accept (no state is kept for it).
pub(crate) const REFUSAL_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\nConnection: close\r\n\r\n\
server full, try again later\n";

/// Answers 503 on a connection the server will not keep, and closes it. Nothing is kept for it:
/// the answer fits in an empty send buffer; then the write side is shut and one read takes
/// whatever request has already arrived (often nothing yet, at accept), so that closing sends a
/// FIN rather than a reset, which could destroy the answer.
pub(crate) fn reject<S: Stream>(mut stream: S, scratch: &mut [u8]) -> u64 {
    let written = stream.write(REFUSAL_503).unwrap_or(0);
    let _ = stream.shutdown_write();
    let _ = stream.read(scratch);
    written as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        // The premise of setting TCP_NODELAY once on the listener: if a kernel stopped copying
        // it, replies would wait for Nagle's algorithm, and this test would say so.
        let listener = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < give_up, "nothing to accept");
                    std::thread::yield_now();
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        assert!(accepted.nodelay().unwrap());
    }
}
