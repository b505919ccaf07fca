//! Simulated sockets: the world the server's loop runs against in the simulation. It follows
//! the kernel where the loop depends on it: readiness is edge-triggered (an event when bytes or
//! a FIN arrive, when a full send buffer gains room, once at registration); a read returns what
//! has arrived, up to the buffer; a write takes what fits in the send buffer (sometimes less, or
//! `WouldBlock` with a writable event owed); descriptors run out (EMFILE) at a limit; a closed
//! listener accepts nothing. Bytes travel in random chunks, so requests and frames are split at
//! random points.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::rc::Rc;

use wsdrain::base::timers::Rng;
use wsdrain::net::Listener;
use wsdrain::net::{Net, Stream};

/// The world, shared by the simulated sockets inside the server and the driver outside it.
pub type Shared = Rc<RefCell<World>>;

/// One TCP connection, both ends.
#[derive(Debug, Default)]
pub struct Socket {
    /// Client → server: sent, still travelling.
    pub c2s_wire: VecDeque<u8>,
    /// Client → server: arrived, readable by the server.
    pub c2s_buf: VecDeque<u8>,
    /// Bytes the server has read so far.
    pub server_read: usize,
    /// The client shut down its sending side (the FIN travels behind `c2s_wire`).
    pub client_fin: bool,
    /// The FIN has arrived at the server.
    pub fin_arrived: bool,
    /// The server has read the end of input (a read returned 0), or the reset.
    pub end_seen: bool,
    /// The client reset the connection.
    pub reset: bool,
    /// Server → client: written by the server, readable by the client.
    pub s2c_buf: VecDeque<u8>,
    /// Room in the server's send buffer plus the client's receive window.
    pub s2c_capacity: usize,
    /// The server shut down its sending side.
    pub server_fin: bool,
    /// Bytes the server has written so far.
    pub server_written: usize,
    /// The server closed the socket (dropped its stream).
    pub server_closed: bool,
    /// Accepted by the server.
    pub accepted: bool,
    /// Still open when the server exited (dropped with the process).
    pub open_at_exit: bool,
    /// Output was still being sent when the server exited at its drain deadline (an HTTP
    /// answer, or a WebSocket's behind a full pipe): the drain's contract cuts it (and counts it
    /// in `drain_end`).
    pub answer_cut_at_exit: bool,
    /// Refused: the listener was closed or its backlog full.
    pub refused: bool,
    /// The slab slot it was registered under.
    pub slot: Option<usize>,
    /// A write said `WouldBlock`: a writable event is owed when room appears.
    pub owe_writable: bool,
}

impl Socket {
    /// Whether the server side has input it has not read (bytes, or the FIN).
    pub fn has_input_for_server(&self) -> bool {
        !self.server_closed
            && (!self.c2s_buf.is_empty() || ((self.fin_arrived || self.reset) && !self.end_seen))
    }
}

/// Fault rates, per seed.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Chance that a write takes only part of what fits.
    pub short_write: f64,
    /// Chance that a write says `WouldBlock` although there is room.
    pub spurious_would_block: f64,
    /// Chance that the poll refuses to register an accepted socket (epoll's `ENOSPC` when
    /// `fs.epoll.max_user_watches` is reached, or `ENOMEM`).
    pub refused_registration: f64,
}

/// The simulated network.
#[derive(Debug)]
pub struct World {
    pub rng: Rng,
    pub sockets: Vec<Socket>,
    pub backlog: [VecDeque<usize>; 2],
    pub listener_open: [bool; 2],
    pub backlog_cap: usize,
    /// Readiness events not yet delivered: `(slot, peer_closed)`; and listeners with connections.
    pub events: Vec<(usize, bool)>,
    pub acceptable: [bool; 2],
    pub fds_in_use: usize,
    pub fd_limit: usize,
    /// Accepted sockets the poll refused to register.
    pub registrations_refused: u64,
    pub spare_held: bool,
    pub faults: Faults,
    /// Writable events owed after a spurious `WouldBlock`, delivered by the driver later.
    pub owed_writable: Vec<usize>,
}

pub fn side_index(side: Listener) -> usize {
    match side {
        Listener::Public => 0,
        Listener::Admin => 1,
    }
}

impl World {
    pub fn new(rng: Rng, fd_limit: usize, faults: Faults) -> Self {
        World {
            rng,
            sockets: Vec::new(),
            backlog: [VecDeque::new(), VecDeque::new()],
            listener_open: [true, true],
            backlog_cap: 64,
            events: Vec::new(),
            acceptable: [false, false],
            fds_in_use: 9, // the listeners, the poll, stdio, and the spare
            fd_limit,
            registrations_refused: 0,
            spare_held: true,
            faults,
            owed_writable: Vec::new(),
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }

    /// A client connects: queued in the listener's backlog, or refused.
    pub fn connect(&mut self, side: Listener) -> usize {
        let id = self.sockets.len();
        // At least what a refusal (503) takes: a fresh socket's send buffer takes it whole.
        let capacity = 256 + self.rng.below(4096) as usize;
        let mut socket = Socket {
            s2c_capacity: capacity,
            ..Socket::default()
        };
        let i = side_index(side);
        if !self.listener_open[i] || self.backlog[i].len() >= self.backlog_cap {
            socket.refused = true;
        } else {
            self.backlog[i].push_back(id);
            self.acceptable[i] = true;
        }
        self.sockets.push(socket);
        id
    }

    /// Queues a readiness event. Like epoll's, its flags are the socket's state when it is
    /// reported, not only what raised it: once the FIN or a reset has arrived, every event says
    /// so (EPOLLRDHUP / EPOLLHUP stay set), whatever raised it.
    fn raise(&mut self, id: usize, peer_closed: bool) {
        let peer_closed = peer_closed || self.sockets[id].fin_arrived || self.sockets[id].reset;
        if let Some(slot) = self.sockets[id].slot
            && !self.sockets[id].server_closed
        {
            match self.events.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, closed)) => *closed |= peer_closed,
                None => self.events.push((slot, peer_closed)),
            }
        }
    }

    /// The network moves a random chunk of each connection's travelling bytes (and then its
    /// FIN) to the server, raising a readable event for each arrival.
    pub fn deliver(&mut self, id: usize) {
        let len = self.sockets[id].c2s_wire.len();
        if len > 0 {
            let n = 1 + self.rng.below(len as u64) as usize;
            let socket = &mut self.sockets[id];
            let chunk: Vec<u8> = socket.c2s_wire.drain(..n).collect();
            if !socket.server_closed {
                socket.c2s_buf.extend(chunk);
            }
            self.raise(id, false);
        } else if self.sockets[id].client_fin && !self.sockets[id].fin_arrived {
            self.sockets[id].fin_arrived = true;
            self.raise(id, true);
        }
    }

    /// The client resets the connection.
    pub fn reset(&mut self, id: usize) {
        let socket = &mut self.sockets[id];
        if socket.reset || socket.server_closed {
            return;
        }
        socket.reset = true;
        socket.c2s_wire.clear();
        socket.c2s_buf.clear();
        self.raise(id, true);
    }

    /// The client reads up to `max` bytes; a full send buffer that gains room raises a
    /// writable event.
    pub fn client_read(&mut self, id: usize, max: usize) -> Vec<u8> {
        let socket = &mut self.sockets[id];
        let n = socket.s2c_buf.len().min(max);
        let bytes: Vec<u8> = socket.s2c_buf.drain(..n).collect();
        if n > 0 && socket.owe_writable {
            socket.owe_writable = false;
            self.raise(id, false);
        }
        bytes
    }

    /// Whether the client has seen the end of the server's stream (everything read).
    pub fn client_sees_eof(&self, id: usize) -> bool {
        let s = &self.sockets[id];
        s.s2c_buf.is_empty() && (s.server_fin || s.server_closed || s.refused)
    }

    /// Takes the events for the next poll.
    pub fn take_events(&mut self) -> Vec<wsdrain::server::Event> {
        let mut events = Vec::new();
        for (i, side) in [(0, Listener::Public), (1, Listener::Admin)] {
            if std::mem::take(&mut self.acceptable[i]) {
                events.push(wsdrain::server::Event::Acceptable(side));
            }
        }
        for (slot, peer_closed) in self.events.drain(..) {
            events.push(wsdrain::server::Event::Ready { slot, peer_closed });
        }
        // The order of one poll's events is the kernel's: shuffle it.
        for i in (1..events.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            events.swap(i, j);
        }
        events
    }

    /// Whether a readiness event is pending for `slot`.
    pub fn event_pending(&self, slot: usize) -> bool {
        self.events.iter().any(|(s, _)| *s == slot)
    }

    /// Delivers the writable events owed after spurious `WouldBlock`s (the kernel would have
    /// raised them when its buffer drained).
    pub fn pay_owed_writable(&mut self) {
        for id in std::mem::take(&mut self.owed_writable) {
            if self.sockets[id].owe_writable {
                self.sockets[id].owe_writable = false;
                self.raise(id, false);
            }
        }
    }
}

/// The server's end of a simulated connection.
#[derive(Debug)]
pub struct SimStream {
    world: Shared,
    id: usize,
}

impl Read for SimStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut world = self.world.borrow_mut();
        let socket = &mut world.sockets[self.id];
        if socket.reset {
            socket.end_seen = true;
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if !socket.c2s_buf.is_empty() {
            let n = socket.c2s_buf.len().min(buf.len());
            for (dst, src) in buf.iter_mut().zip(socket.c2s_buf.drain(..n)) {
                *dst = src;
            }
            socket.server_read += n;
            return Ok(n);
        }
        if socket.fin_arrived {
            socket.end_seen = true;
            return Ok(0);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for SimStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut world = self.world.borrow_mut();
        let faults = world.faults;
        let spurious = world.chance(faults.spurious_would_block);
        let short = world.chance(faults.short_write);
        let cut = world.rng.next_u64();
        let id = self.id;
        let socket = &mut world.sockets[id];
        if socket.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if socket.server_fin {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let room = socket.s2c_capacity.saturating_sub(socket.s2c_buf.len());
        // The first write goes into an empty send buffer: no fault there, as in the kernel.
        let (spurious, short) = if socket.server_written == 0 {
            (false, false)
        } else {
            (spurious, short)
        };
        if total == 0 {
            return Ok(0);
        }
        if room == 0 || spurious {
            socket.owe_writable = true;
            if room > 0 {
                world.owed_writable.push(id);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = total.min(room);
        if short {
            n = 1 + (cut % n as u64) as usize;
        }
        socket.server_written += n;
        let mut left = n;
        for b in bufs {
            let take = left.min(b.len());
            socket.s2c_buf.extend(&b[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for SimStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        let mut world = self.world.borrow_mut();
        let socket = &mut world.sockets[self.id];
        if socket.reset {
            return Err(io::ErrorKind::NotConnected.into());
        }
        socket.server_fin = true;
        Ok(())
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        let mut world = self.world.borrow_mut();
        world.fds_in_use -= 1;
        world.sockets[self.id].server_closed = true;
    }
}

/// The listeners and registry the server sees.
#[derive(Debug)]
pub struct SimNet {
    pub world: Shared,
}

impl Net for SimNet {
    type Stream = SimStream;

    fn accept(&mut self, side: Listener) -> io::Result<SimStream> {
        let mut world = self.world.borrow_mut();
        let i = side_index(side);
        if !world.listener_open[i] || world.backlog[i].is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if world.fds_in_use >= world.fd_limit {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        let Some(id) = world.backlog[i].pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        world.fds_in_use += 1;
        world.sockets[id].accepted = true;
        Ok(SimStream {
            world: self.world.clone(),
            id,
        })
    }

    fn register(&mut self, stream: &mut SimStream, slot: usize) -> io::Result<()> {
        let mut world = self.world.borrow_mut();
        // Drawn only where the fault is on, so that other seeds play as they always did.
        let refused = world.faults.refused_registration;
        if refused > 0.0 && world.chance(refused) {
            world.registrations_refused += 1;
            return Err(io::Error::other("the poll refused the socket (ENOSPC)"));
        }
        world.sockets[stream.id].slot = Some(slot);
        // Registration reports the current state: writable, and readable if bytes are there.
        let peer_closed = world.sockets[stream.id].fin_arrived || world.sockets[stream.id].reset;
        world.raise(stream.id, peer_closed);
        Ok(())
    }

    fn close_listener(&mut self, side: Listener) {
        let mut world = self.world.borrow_mut();
        let i = side_index(side);
        world.listener_open[i] = false;
        // Connections still in the backlog are reset by the kernel.
        for id in std::mem::take(&mut world.backlog[i]) {
            world.sockets[id].refused = true;
        }
    }

    fn release_spare(&mut self) -> bool {
        let mut world = self.world.borrow_mut();
        if world.spare_held {
            world.spare_held = false;
            world.fds_in_use -= 1;
            true
        } else {
            false
        }
    }

    fn refill_spare(&mut self) {
        let mut world = self.world.borrow_mut();
        if !world.spare_held && world.fds_in_use < world.fd_limit {
            world.spare_held = true;
            world.fds_in_use += 1;
        }
    }
}
