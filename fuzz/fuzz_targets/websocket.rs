//! Fuzz target: the WebSocket frame layer. Any bytes, split into reads at a fuzzer-chosen
//! point, go through the session as on a connection; nothing may panic, and the output must be
//! the same for the split and the whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsdrain_fuzz_support::run_frames;

mod wsdrain_fuzz_support {
    include!("../support.rs");
}

fuzz_target!(|data: &[u8]| {
    let (cut, bytes) = match data.split_first() {
        Some((c, rest)) => (*c as usize, rest),
        None => return,
    };
    let whole = run_frames(bytes, None);
    let split = run_frames(bytes, Some(cut % (bytes.len() + 1)));
    assert_eq!(whole, split);
});
