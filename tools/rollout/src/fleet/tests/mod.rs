//! The fleet against a scripted server on loopback ([`scripted`]).

mod endings;
mod handover;
mod scripted;
