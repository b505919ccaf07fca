//! Layer 0, the base: time (the loop's clock, deadlines, jitter), input and output buffers and
//! the memory reading behind the metrics. Uses nothing else of this crate.

pub mod inbuf;
pub mod memory;
pub mod outbuf;
pub mod time;
pub mod timers;
