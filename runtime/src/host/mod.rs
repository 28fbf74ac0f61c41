//! The host side of the WIT interfaces: one file per interface, each a small
//! `impl Host for HostState`. Host functions know syscalls, not JSON, and
//! check every argument again: a component is untrusted input.

mod clock;
pub mod files;
mod net;
mod vcpu;

use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;

pub use files::FileTable;

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "runtime",
    });
}

/// The bare strerror text of `e`, as qemu-ga prints it.
fn os_text(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |code| nix::errno::Errno::from_raw(code).desc().to_string(),
    )
}

/// One call's store data: what the call was granted, and what it produced
/// besides its reply.
pub struct HostState {
    /// Present only when the policy grants `files` to the command.
    pub files: Option<Arc<Mutex<FileTable>>>,
    /// Bytes a `files.read` staged for the reply's staged member.
    pub staged: Vec<u8>,
    memory_limit: usize,
    /// Set when the component tried to grow past `memory_limit`, so the
    /// resulting trap can be reported as the limit it is.
    pub memory_limit_hit: bool,
}

impl HostState {
    pub fn new(files: Option<Arc<Mutex<FileTable>>>, staged: Vec<u8>, memory_limit: usize) -> Self {
        HostState {
            files,
            staged,
            memory_limit,
            memory_limit_hit: false,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_limit_hit = true;
            wasmtime::bail!("memory limit of {} MiB exceeded", self.memory_limit >> 20);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
