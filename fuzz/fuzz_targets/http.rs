//! Fuzz target: the HTTP request path. Any bytes, split into reads at fuzzer-chosen points,
//! go through parse → route → response like on a connection; nothing may panic, and the split
//! must not change what is parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsdrain_fuzz_support::{answer_all, parse_outcome};

mod wsdrain_fuzz_support {
    include!("../support.rs");
}

fuzz_target!(|data: &[u8]| {
    let (cut, bytes) = match data.split_first() {
        Some((c, rest)) => (*c as usize, rest),
        None => return,
    };
    let whole = parse_outcome(bytes);
    let split = cut % (bytes.len() + 1);
    let first = parse_outcome(&bytes[..split]);
    if first != "partial" {
        // A prefix that already decides must decide the same way as the whole.
        assert_eq!(first, whole, "prefix of {split} bytes decided differently");
    }
    answer_all(bytes);
});
