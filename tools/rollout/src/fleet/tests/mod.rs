//! The fleet against a scripted server on loopback ([`scripted`]).

mod handover;
mod scripted;
