//! A connection's queue of bytes to send: owned buffers, static texts and shared file bodies,
//! written with one vectored write per call, and freed as soon as it is empty so an idle
//! connection holds no buffer: an empty queue is one null pointer (8 bytes) in the connection.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Slices handed to one vectored send (`sendmsg`).
const MAX_IOVECS: usize = 32;

/// Small owned chunks are merged into the previous one up to this size, so many small replies
/// go out in one slot of a vectored send.
const COALESCE_BYTES: usize = 16 * 1024;

/// A piece of output.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Bytes built for this connection.
    Owned(Vec<u8>),
    /// A compile-time text.
    Static(&'static [u8]),
    /// A body shared with other connections (a cached static file).
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Static(s) => s,
            Chunk::Shared(a) => a,
        }
    }
}

/// Output not yet accepted by the kernel; `None` while empty.
#[derive(Debug, Default)]
pub struct OutQueue(Option<Box<Queue>>);

#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

impl OutQueue {
    /// An empty queue; allocates nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn queue(&mut self) -> &mut Queue {
        self.0.get_or_insert_with(Box::default)
    }

    /// Appends a chunk.
    pub(crate) fn push(&mut self, chunk: Chunk) {
        if !chunk.bytes().is_empty() {
            self.queue().push(chunk);
        }
    }

    /// Appends bytes written by `fill` (at most about `additional` of them) to the last owned
    /// chunk when it has room, else to a new one: many small frames share one buffer and one
    /// slot of a vectored send, without an intermediate copy.
    pub fn extend_with(&mut self, additional: usize, fill: impl FnOnce(&mut Vec<u8>)) {
        self.queue().extend_with(additional, fill);
    }

    /// Writes as much as `w` takes without blocking. Returns the bytes written; the queue is
    /// empty afterwards unless the writer would block. `WouldBlock` is not an error here: what
    /// is left stays queued and is written on the next writable event, never re-sent.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let Some(queue) = self.0.as_mut() else {
            return Ok(0);
        };
        let written = queue.write_to(w);
        if queue.len == 0 {
            // Give the memory back: an idle connection should hold no buffer.
            self.0 = None;
        }
        written
    }

    /// All queued bytes, concatenated (for tests).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.as_ref().map_or_else(Vec::new, |q| q.to_vec())
    }
}

impl Queue {
    fn push(&mut self, chunk: Chunk) {
        let n = chunk.bytes().len();
        if n == 0 {
            return;
        }
        self.len += n;
        if let (Chunk::Owned(new), Some(Chunk::Owned(back))) = (&chunk, self.chunks.back_mut())
            && back.len() + new.len() <= COALESCE_BYTES
        {
            back.extend_from_slice(new);
            return;
        }
        self.chunks.push_back(chunk);
    }

    fn extend_with(&mut self, additional: usize, fill: impl FnOnce(&mut Vec<u8>)) {
        let reuse = matches!(self.chunks.back(), Some(Chunk::Owned(back)) if back.len() + additional <= COALESCE_BYTES);
        if !reuse {
            self.chunks.push_back(Chunk::Owned(Vec::with_capacity(
                additional.min(COALESCE_BYTES),
            )));
        }
        if let Some(Chunk::Owned(back)) = self.chunks.back_mut() {
            let before = back.len();
            fill(back);
            self.len += back.len() - before;
        }
    }

    fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<usize> {
        let mut total = 0;
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
                let bytes = chunk.bytes();
                slices[i] = IoSlice::new(if i == 0 { &bytes[self.offset..] } else { bytes });
                count += 1;
            }
            match w.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                debug_assert!(false, "wrote more than was queued");
                return;
            };
            let left = front.bytes().len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            self.chunks.pop_front();
        }
    }

    #[cfg(test)]
    fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for (i, c) in self.chunks.iter().enumerate() {
            v.extend_from_slice(if i == 0 {
                &c.bytes()[self.offset..]
            } else {
                c.bytes()
            });
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call, then would block after `calls`.
    struct Trickle {
        taken: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let n = buf.len().min(self.limit);
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut q = OutQueue::new();
        q.push(Chunk::Static(b"hello "));
        q.push(Chunk::Shared(Arc::from(&b"big "[..])));
        q.push(Chunk::Owned(b"world".to_vec()));
        q.push(Chunk::Owned(b"!".to_vec())); // coalesced into "world"
        assert_eq!(q.len(), 16);
        let mut w = Trickle {
            taken: Vec::new(),
            limit: 3,
            calls: 2,
        };
        assert_eq!(q.write_to(&mut w).unwrap(), 6);
        assert_eq!(q.len(), 10);
        assert_eq!(q.to_vec(), b"big world!");
        w.calls = 100;
        assert_eq!(q.write_to(&mut w).unwrap(), 10);
        assert!(q.is_empty());
        assert_eq!(w.taken, b"hello big world!");
        assert!(q.0.is_none(), "an empty queue holds no allocation");
    }

    #[test]
    fn extend_with_shares_the_tail_buffer() {
        let mut q = OutQueue::new();
        q.extend_with(3, |v| v.extend_from_slice(b"abc"));
        q.extend_with(2, |v| v.extend_from_slice(b"de"));
        assert_eq!(q.queue().chunks.len(), 1);
        q.push(Chunk::Static(b"!"));
        q.extend_with(COALESCE_BYTES, |v| v.extend_from_slice(b"f"));
        assert_eq!(q.queue().chunks.len(), 3);
        assert_eq!((q.len(), q.to_vec()), (7, b"abcde!f".to_vec()));
    }

    #[test]
    fn write_errors_surface() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut q = OutQueue::new();
        q.push(Chunk::Static(b"x"));
        assert_eq!(
            q.write_to(&mut Broken).unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(q.len(), 1);
    }
}
