//! The simulated sockets: a minimal in-memory `Net`, no kernel, no syscalls.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, IoSlice, Read, Write};

use testkit::ws;

use wsdrain::net::{Listener, Net, Stream};

/// A client's masking key.
pub(crate) const MASK: [u8; 4] = [0x5a, 0x17, 0x99, 0x03];

/// A client's close frame: 1000, masked.
pub(crate) fn client_close() -> Vec<u8> {
    let mut close = Vec::new();
    ws::encode_into(
        &mut close,
        true,
        ws::CLOSE,
        &1000u16.to_be_bytes(),
        Some(MASK),
        0,
    );
    close
}

/// Everything outside the server: input waiting for it, what it wrote, connections waiting to be
/// accepted. Per connection only what is in flight (an idle one has nothing here), so the RSS
/// growth is the server's.
#[derive(Default)]
pub(crate) struct World {
    /// Bytes for the server to read, by slab slot (removed once read).
    pub(crate) input: HashMap<u32, Vec<u8>>,
    /// Connections waiting in each listener's backlog.
    pub(crate) backlog: [usize; 2],
    /// Slots registered since the driver last looked (just accepted).
    pub(crate) registered: Vec<u32>,
    /// Sockets the server has closed.
    pub(crate) closed: u64,
    /// Bytes and sends the server made.
    pub(crate) bytes_out: u64,
    pub(crate) sends: u64,
    /// Read what the server sends (the drain: a goaway notice is answered with a close frame).
    pub(crate) parse_output: bool,
    /// Slots whose client answers now: their input is queued, an event is owed.
    pub(crate) answer: Vec<u32>,
}

thread_local! {
    static WORLD: RefCell<World> = RefCell::new(World::default());
}

pub(crate) fn world<T>(f: impl FnOnce(&mut World) -> T) -> T {
    WORLD.with(|w| f(&mut w.borrow_mut()))
}

/// One simulated socket: its slab slot, nothing else (a descriptor's 4 bytes, as mio's).
#[derive(Debug)]
pub(crate) struct SimStream(pub(crate) u32);

impl Read for SimStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        world(|w| {
            let Some(pending) = w.input.get_mut(&self.0) else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let n = pending.len().min(buf.len());
            buf[..n].copy_from_slice(&pending[..n]);
            pending.drain(..n);
            if pending.is_empty() {
                w.input.remove(&self.0);
            }
            Ok(n)
        })
    }
}

impl Write for SimStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        world(|w| {
            let n: usize = bufs.iter().map(|b| b.len()).sum();
            w.bytes_out += n as u64;
            w.sends += 1;
            if w.parse_output {
                let bytes: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                let mut at = 0;
                while let Some(head) = ws::frame_at(&bytes[at..]) {
                    let payload = &bytes[at + head.header_len..at + head.frame_len()];
                    if head.opcode == ws::TEXT
                        && payload.starts_with(br#"{"type":"alive","event":"goaway""#)
                    {
                        w.input
                            .entry(self.0)
                            .or_default()
                            .extend_from_slice(&client_close());
                        w.answer.push(self.0);
                    }
                    at += head.frame_len();
                }
            }
            Ok(n)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for SimStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        world(|w| {
            w.closed += 1;
            w.input.remove(&self.0);
        });
    }
}

/// The listeners: a count of connections waiting on each.
pub(crate) struct SimNet;

pub(crate) fn index(listener: Listener) -> usize {
    match listener {
        Listener::Public => 0,
        Listener::Admin => 1,
    }
}

impl Net for SimNet {
    type Stream = SimStream;

    fn accept(&mut self, listener: Listener) -> io::Result<SimStream> {
        world(|w| {
            let waiting = &mut w.backlog[index(listener)];
            if *waiting == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            *waiting -= 1;
            Ok(SimStream(u32::MAX))
        })
    }

    fn register(&mut self, stream: &mut SimStream, slot: usize) -> io::Result<()> {
        stream.0 = slot as u32;
        world(|w| w.registered.push(stream.0));
        Ok(())
    }

    fn close_listener(&mut self, _: Listener) {}

    fn release_spare(&mut self) -> bool {
        false
    }

    fn refill_spare(&mut self) {}
}
