//! Layer 0, the base: time (the loop's clock, deadlines, jitter) and output buffers. Uses
//! nothing else of this crate.

pub mod outbuf;
pub mod timers;
