//! sandga: a QEMU guest agent whose commands run as sandboxed WebAssembly
//! components. See ARCHITECTURE.md for the map.

pub mod agent;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod daemon;
pub mod dispatch;
pub mod host;
pub mod logging;
pub mod policy;
pub mod protocol;
pub mod sandbox;
pub mod state;
