//! The wire protocol of qemu-ga: a byte stream of JSON request objects in,
//! one JSON response object per line out.
//!
//! This layer exists so that the exact framing, JSON dialect, error texts and
//! limits of qemu-ga (spec §1) live in one place that can be tested byte by
//! byte, apart from everything else. It turns bytes into [`Inbound`] events
//! ([`Decoder`]) and writes responses ([`write_return`],
//! [`write_return_with_staged`], [`write_error`]).
//!
//! It must never know about commands: no command names, no argument schemas,
//! no dispatch, no channel I/O. A [`Request`] is only "a string to execute,
//! an optional arguments object and an optional id"; what those mean is the
//! dispatcher's business. It must also never panic on any input.

mod decoder;
mod parser;
mod response;

pub use decoder::{
    Decoder, Inbound, MAX_MESSAGE_SIZE, MAX_NESTING, MAX_TOKEN_COUNT, ProtocolError, Request,
};
pub use response::{DELIMITER, ErrorClass, write_error, write_return, write_return_with_staged};
