//! Bytes a connection has read but not consumed yet (an incomplete request head or frame, or
//! requests waiting behind output), behind one pointer: an idle connection, the common case by
//! far, pays 8 bytes for it where a `Vec` would take 24 (every idle connection pays it, so it
//! counts in the memory per idle WebSocket).

/// Pending input; empty means no allocation at all.
// The box is the point: a `Vec` inline is three words, a box of one is one (the extra
// allocation happens only while input is pending).
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub struct InBuf(Option<Box<Vec<u8>>>);

impl InBuf {
    /// An empty buffer; allocates nothing.
    pub const fn new() -> Self {
        InBuf(None)
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|v| v.is_empty())
    }

    /// Bytes pending.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.len())
    }

    /// Takes the bytes out, leaving the buffer empty (and unallocated).
    pub fn take(&mut self) -> Vec<u8> {
        self.0.take().map(|v| *v).unwrap_or_default()
    }

    /// Holds `bytes` (nothing, and no allocation, when they are empty).
    pub fn set(&mut self, bytes: Vec<u8>) {
        self.0 = (!bytes.is_empty()).then(|| Box::new(bytes));
    }

    /// Appends `bytes`.
    pub fn extend(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.0.get_or_insert_default().extend_from_slice(bytes);
        }
    }

    /// Drops what is pending, and its allocation.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_holds_nothing_and_takes_one_word() {
        assert_eq!(std::mem::size_of::<InBuf>(), 8);
        let mut b = InBuf::new();
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        b.extend(b"");
        assert!(b.0.is_none(), "extending by nothing allocates nothing");
        b.extend(b"ab");
        b.extend(b"c");
        assert_eq!((b.len(), b.is_empty()), (3, false));
        assert_eq!(b.take(), b"abc");
        assert!(b.0.is_none());
        b.set(Vec::new());
        assert!(b.0.is_none());
        b.set(b"x".to_vec());
        assert_eq!(b.len(), 1);
        b.clear();
        assert!(b.is_empty() && b.0.is_none());
    }
}
