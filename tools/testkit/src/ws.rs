//! The client side of the WebSocket protocol (RFC 6455), the one copy every test and tool uses:
//! encoding any frame (any payload length, masked or not, reserved bits as given, so a test
//! can also write the malformed frames a server must refuse), decoding any frame at the start
//! of a buffer, and the upgrade handshake.
//!
//! [`encode_into`] appends to a caller's buffer and [`frame_at`] only reads the header, so the
//! load generator's hot path allocates nothing per frame; [`encode`] and [`decode`] are the
//! convenient forms for tests.

/// Opcode of a continuation frame.
pub const CONTINUATION: u8 = 0x0;
/// Opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const PONG: u8 = 0xA;

/// The longest frame header: 2 bytes, a 64-bit length, a masking key.
pub const MAX_HEADER: usize = 2 + 8 + 4;

/// The `Sec-WebSocket-Key` the clients here send: the sample nonce of RFC 6455 §1.3.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` a server must answer [`KEY`] with (RFC 6455 §1.3).
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// How every message the server sends of its own starts (the hello, alive messages, the goaway
/// notice): a client tells them from replies by it.
pub const ALIVE_PREFIX: &str = "{\"type\":\"alive\"";

/// A complete upgrade request for `/ws` with [`KEY`].
pub const UPGRADE_REQUEST: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Appends one frame to `out`: `fin`, the 3 reserved bits `rsv` (0..8; RSV1 is 4), `opcode`
/// (0..16), the payload length in the shortest of the 7-, 16- and 64-bit forms, and the
/// payload, masked with `mask` when given (a client's frames must be; a server's must not).
/// Bits of `rsv` and `opcode` beyond their fields are dropped. Allocates only when `out` must
/// grow (the load generator's hot path: written as plain pushes and one pass over the payload,
/// which measured faster than reserving first or masking in place).
#[inline]
pub fn encode_into(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    rsv: u8,
) {
    out.push((u8::from(fin) << 7) | ((rsv & 0b111) << 4) | (opcode & 0x0f));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// One frame, as [`encode_into`] writes it, in a new buffer.
pub fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>, rsv: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_HEADER + payload.len());
    encode_into(&mut out, fin, opcode, payload, mask, rsv);
    out
}

/// XORs `bytes` with the masking key (masking and unmasking are the same operation).
pub fn apply_mask(bytes: &mut [u8], key: [u8; 4]) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The header of a frame that is complete at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The FIN bit.
    pub fin: bool,
    /// The 3 reserved bits (RSV1 is 4).
    pub rsv: u8,
    /// The opcode.
    pub opcode: u8,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Bytes before the payload: 2, plus 2 or 8 for a longer length, plus 4 for a mask.
    pub header_len: usize,
    /// Bytes of payload.
    pub payload_len: usize,
}

impl Head {
    /// Bytes of the whole frame.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Where the payload is, in the buffer the header was read from.
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        self.header_len..self.frame_len()
    }
}

/// The header of the frame at the start of `buf`, if the whole frame (header and payload) is
/// there; `None` while it is incomplete. Reads nothing but the header and allocates nothing; a
/// masked payload is left masked (see [`Head::mask`]).
pub fn frame_at(buf: &[u8]) -> Option<Head> {
    let (&first, &second) = (buf.first()?, buf.get(1)?);
    let (payload_len, mut header_len) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if second & 0x80 != 0 {
        let key: [u8; 4] = buf.get(header_len..header_len + 4)?.try_into().ok()?;
        header_len += 4;
        Some(key)
    } else {
        None
    };
    // A length the buffer cannot hold is a frame that never completes.
    let payload_len = usize::try_from(payload_len).ok()?;
    (buf.len() - header_len >= payload_len).then_some(Head {
        fin: first & 0x80 != 0,
        rsv: (first >> 4) & 0b111,
        opcode: first & 0x0f,
        mask,
        header_len,
        payload_len,
    })
}

/// A decoded frame, its payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The FIN bit.
    pub fin: bool,
    /// The opcode.
    pub opcode: u8,
    /// The payload (unmasked).
    pub payload: Vec<u8>,
}

impl Frame {
    /// The frame `head` describes, from the buffer it was read from.
    pub fn at(buf: &[u8], head: &Head) -> Frame {
        let mut payload = buf[head.payload_range()].to_vec();
        if let Some(key) = head.mask {
            apply_mask(&mut payload, key);
        }
        Frame {
            fin: head.fin,
            opcode: head.opcode,
            payload,
        }
    }

    /// The payload as text.
    ///
    /// # Panics
    ///
    /// If the payload is not UTF-8: a server's text must be, and a test should say so.
    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).expect("the frame's text is UTF-8")
    }

    /// The status code of a close frame that carries one.
    pub fn close_code(&self) -> Option<u16> {
        match self.payload[..] {
            [high, low, ..] if self.opcode == CLOSE => Some(u16::from_be_bytes([high, low])),
            _ => None,
        }
    }

    /// A close frame's reason (after its code), lossily decoded; empty for any other frame.
    pub fn close_reason(&self) -> String {
        match &self.payload[..] {
            [_, _, reason @ ..] if self.opcode == CLOSE => {
                String::from_utf8_lossy(reason).into_owned()
            }
            _ => String::new(),
        }
    }
}

/// The frame at the start of `buf` and the bytes it takes, if it is complete.
pub fn decode(buf: &[u8]) -> Option<(Frame, usize)> {
    let head = frame_at(buf)?;
    Some((Frame::at(buf, &head), head.frame_len()))
}

/// Reads the answer to [`UPGRADE_REQUEST`] at the start of `buf`: `None` while its head is
/// incomplete; `Ok(head length)` for a 101 with the right `Sec-WebSocket-Accept` (frames may
/// follow in the same buffer); `Err` with the head otherwise.
pub fn upgrade_response(buf: &[u8]) -> Option<Result<usize, String>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let switching = lines
        .next()
        .is_some_and(|status| status.split(' ').nth(1) == Some("101"));
    let accepted = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
        })
    });
    Some(if switching && accepted {
        Ok(end)
    } else {
        Err(format!("upgrade refused: {head:?}"))
    })
}

#[cfg(test)]
mod tests {
    //! Round trips at every length form, masking as RFC 6455 shows it, partial buffers.

    use super::*;

    #[test]
    fn frames_round_trip_at_every_length_form() {
        for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for mask in [None, Some([0x37, 0xfa, 0x21, 0x3d])] {
                let bytes = encode(true, BINARY, &payload, mask, 0);
                let header = match len {
                    0..=125 => 2,
                    126..=65_535 => 4,
                    _ => 10,
                } + if mask.is_some() { 4 } else { 0 };
                assert_eq!(bytes.len(), header + len, "length {len}");
                let head = frame_at(&bytes).expect("complete");
                assert_eq!(head.header_len, header);
                assert_eq!(head.payload_len, len);
                assert_eq!(head.mask, mask);
                let (frame, used) = decode(&bytes).expect("complete");
                assert_eq!(used, bytes.len());
                assert_eq!((frame.fin, frame.opcode), (true, BINARY));
                assert!(frame.payload == payload, "payload of length {len} changed");
            }
        }
    }

    #[test]
    fn length_fields_are_the_shortest_form() {
        assert_eq!(encode(true, TEXT, &[0; 125], None, 0)[1], 125);
        let f = encode(true, TEXT, &[0; 126], None, 0);
        assert_eq!(f[1..4], [126, 0, 126]);
        let f = encode(true, TEXT, &[0; 65_535], None, 0);
        assert_eq!(f[1..4], [126, 0xff, 0xff]);
        // 65,536 no longer fits 16 bits (a `len as u16` would write 0 here).
        let f = encode(true, TEXT, &[0; 65_536], None, 0);
        assert_eq!(f[1..10], [127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn masking_follows_the_rfc() {
        // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
        let f = encode(true, TEXT, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]), 0);
        assert_eq!(
            f,
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        let (frame, _) = decode(&f).unwrap();
        assert_eq!(frame.text(), "Hello");
        // And the unmasked one.
        assert_eq!(
            encode(true, TEXT, b"Hello", None, 0),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        let mut bytes = *b"abcdefg";
        apply_mask(&mut bytes, [1, 2, 3, 4]);
        apply_mask(&mut bytes, [1, 2, 3, 4]);
        assert_eq!(&bytes, b"abcdefg");
    }

    #[test]
    fn flags_and_reserved_bits_are_written_and_read() {
        let f = encode(false, CONTINUATION, b"x", None, 4);
        assert_eq!(f[0], 0x40);
        let head = frame_at(&f).unwrap();
        assert_eq!((head.fin, head.rsv, head.opcode), (false, 4, CONTINUATION));
        assert_eq!(encode(true, 0xB, b"", None, 7)[0], 0xfb);
        assert_eq!(
            encode(true, 0x1f, b"", None, 9)[0],
            0x9f,
            "extra bits dropped"
        );
    }

    #[test]
    fn a_partial_buffer_is_no_frame_yet() {
        for len in [0usize, 5, 126, 70_000] {
            let bytes = encode(true, TEXT, &vec![b'a'; len], Some([1, 2, 3, 4]), 0);
            for cut in [0, 1, 2, 3, 5, 9, bytes.len() - 1] {
                let cut = cut.min(bytes.len() - 1);
                assert_eq!(frame_at(&bytes[..cut]), None, "{len} bytes cut at {cut}");
                assert_eq!(decode(&bytes[..cut]), None);
            }
        }
        // A length no buffer holds never completes (and does not overflow).
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(frame_at(&huge), None);
    }

    #[test]
    fn frames_are_read_one_after_another() {
        let mut buf = Vec::new();
        encode_into(&mut buf, false, TEXT, b"one", None, 0);
        encode_into(&mut buf, true, CONTINUATION, b"two", None, 0);
        encode_into(&mut buf, true, CLOSE, &1012u16.to_be_bytes(), None, 0);
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((frame, used)) = decode(&buf[at..]) {
            frames.push(frame);
            at += used;
        }
        assert_eq!(at, buf.len());
        assert_eq!(frames.len(), 3);
        assert_eq!((frames[0].fin, frames[0].text().as_str()), (false, "one"));
        assert_eq!(frames[1].text(), "two");
        assert_eq!(frames[2].close_code(), Some(1012));
        assert_eq!(frames[0].close_code(), None);
    }

    #[test]
    fn the_upgrade_answer_is_checked() {
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             sec-websocket-accept: {ACCEPT}\r\n\r\n\x01\x02hi"
        );
        let head_len = ok.len() - 4;
        assert_eq!(upgrade_response(ok.as_bytes()), Some(Ok(head_len)));
        assert_eq!(upgrade_response(&ok.as_bytes()[..head_len - 1]), None);
        let wrong_key = ok.replace(ACCEPT, "x");
        assert!(matches!(
            upgrade_response(wrong_key.as_bytes()),
            Some(Err(_))
        ));
        let refused = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n";
        assert!(matches!(upgrade_response(refused), Some(Err(_))));
        assert!(UPGRADE_REQUEST.ends_with("\r\n\r\n"));
        assert!(UPGRADE_REQUEST.contains(KEY));
    }
}
