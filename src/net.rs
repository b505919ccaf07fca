//! Sockets below the loop: listeners with an explicit backlog, the open-files limit, and the
//! spare descriptor that lets the server refuse clients even when descriptors run out.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use crate::http::REJECT_503;

/// A non-blocking listener with `SO_REUSEADDR` and the given backlog (mio's own `bind` fixes the
/// backlog at 128, too small for a reconnect storm after a rollout).
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(TcpListener::from_std(socket.into()))
}

/// The open-files limit before and after raising it.
#[derive(Debug, Clone, Copy)]
pub struct FdLimits {
    /// Soft limit found at start.
    pub soft_before: u64,
    /// Soft limit now.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit: every socket is a descriptor.
pub fn raise_fd_limit() -> io::Result<FdLimits> {
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
pub fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether an accept error concerns only that one connection (try the next).
pub fn is_transient_accept_error(e: &io::Error) -> bool {
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
pub struct SpareFd(Option<Socket>);

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

/// Answers 503 on a connection the server will not keep, and closes it. Nothing is kept for it:
/// the answer fits in an empty send buffer, and whatever request already arrived is read first
/// so that closing sends FIN, not a reset that could destroy the answer.
pub fn reject(mut stream: TcpStream, scratch: &mut [u8]) -> u64 {
    let written = stream.write(REJECT_503).unwrap_or(0);
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.read(scratch);
    written as u64
}
