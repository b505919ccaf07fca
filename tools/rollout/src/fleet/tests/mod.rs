//! The fleet against a scripted server on loopback ([`scripted`]), and its timer queue alone
//! ([`timers`]).

mod endings;
mod handover;
mod scripted;
mod timers;
