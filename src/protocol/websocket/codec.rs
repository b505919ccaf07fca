//! Server frames out and client payloads in: frame headers written into a connection's output
//! queue (no copy of the payload when it can be written in place), close frames with a reason
//! cut on a character boundary, unmasking, and UTF-8 checked as text arrives. Header parsing is
//! tungstenite's `FrameHeader::parse`.

use tungstenite::protocol::frame::coding::{CloseCode, Control, OpCode};

use crate::base::outbuf::OutQueue;

/// Largest server frame header: 2 bytes, plus 8 for a 64-bit length (no mask).
pub const MAX_SERVER_HEADER_BYTES: usize = 10;

/// Queues an unmasked server frame whose payload `fill` writes (exactly `len` bytes).
pub fn write_header(
    out: &mut OutQueue,
    opcode: OpCode,
    len: usize,
    fill: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_with(MAX_SERVER_HEADER_BYTES + len, |v| {
        header_into(v, opcode, len);
        fill(v);
    });
}

/// Appends an unmasked server frame header for a payload of `len` bytes.
fn header_into(v: &mut Vec<u8>, opcode: OpCode, len: usize) {
    v.push(0x80 | u8::from(opcode));
    match len {
        0..=125 => v.push(len as u8),
        126..=0xffff => {
            v.push(126);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            v.push(127);
            v.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Queues an unmasked server frame.
pub fn write_frame(out: &mut OutQueue, opcode: OpCode, payload: &[u8]) {
    write_header(out, opcode, payload.len(), |v| v.extend_from_slice(payload));
}

/// Appends an unmasked server frame to a buffer of its own: the bytes [`write_frame`] queues.
pub fn frame_into(v: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    header_into(v, opcode, payload.len());
    v.extend_from_slice(payload);
}

/// Queues a close frame; the reason is cut to fit the 125-byte control payload.
pub fn write_close(out: &mut OutQueue, code: CloseCode, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    write_header(
        out,
        OpCode::Control(Control::Close),
        2 + reason.len(),
        |v| {
            v.extend_from_slice(&u16::from(code).to_be_bytes());
            v.extend_from_slice(reason);
        },
    );
}

/// XORs a client payload with its mask, eight bytes at a time.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// Checks the UTF-8 of a growing text message `bytes`, of which the first `*checked` are known
/// to be valid: valid so far, allowing an incomplete character at the end unless `complete`.
/// Moves `*checked` to where the check stopped, so the next call resumes there.
pub fn utf8_so_far(bytes: &[u8], checked: &mut usize, complete: bool) -> bool {
    match std::str::from_utf8(&bytes[*checked..]) {
        Ok(_) => {
            *checked = bytes.len();
            true
        }
        Err(e) if e.error_len().is_none() && !complete => {
            *checked += e.valid_up_to();
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tungstenite::protocol::frame::FrameHeader;
    use tungstenite::protocol::frame::coding::Data;

    use super::*;

    #[test]
    fn unmask_matches_the_byte_by_byte_definition() {
        let mask = [1, 2, 3, 250];
        for len in [0, 1, 7, 8, 9, 31, 64, 100] {
            let original: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut fast = original.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn server_frame_lengths() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = OutQueue::new();
            write_frame(&mut out, OpCode::Data(Data::Binary), &vec![0; len]);
            let bytes = out.to_vec();
            assert_eq!(bytes.len(), header + len, "len {len}");
            let mut cursor = Cursor::new(&bytes[..]);
            let (parsed, parsed_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert_eq!(
                (parsed_len, parsed.is_final, parsed.mask),
                (len as u64, true, None)
            );
            let mut own = Vec::new();
            frame_into(&mut own, OpCode::Data(Data::Binary), &vec![0; len]);
            assert_eq!(own, bytes, "frame_into, len {len}");
        }
    }

    #[test]
    fn close_reason_is_cut_on_a_character_boundary() {
        let mut out = OutQueue::new();
        write_close(&mut out, CloseCode::Restart, &"é".repeat(100));
        let bytes = out.to_vec();
        assert_eq!(bytes[1] as usize, bytes.len() - 2);
        assert!(bytes.len() - 2 <= 125);
        assert_eq!(u16::from_be_bytes([bytes[2], bytes[3]]), 1012);
        assert!(std::str::from_utf8(&bytes[4..]).is_ok());
    }

    #[test]
    fn utf8_is_checked_across_fragment_boundaries() {
        let euro = "€".as_bytes(); // 3 bytes
        let mut checked = 0;
        let mut message = euro[..1].to_vec();
        assert!(utf8_so_far(&message, &mut checked, false));
        message.extend_from_slice(&euro[1..]);
        assert!(utf8_so_far(&message, &mut checked, false));
        assert_eq!(checked, 3);
        message.push(0xff);
        assert!(
            !utf8_so_far(&message, &mut checked, false),
            "fails fast on a byte that can never be valid"
        );
        let mut checked = 0;
        assert!(
            !utf8_so_far(&euro[..2], &mut checked, true),
            "an incomplete character at the end of the message"
        );
    }
}
