//! The host side of the WIT interfaces: one file per interface, each a small
//! `impl Host for HostState`. Host functions know syscalls, not JSON, and
//! check every argument again: a component is untrusted input.

mod clock;
mod clock_control;
pub mod files;
mod fsfreeze;
mod mounts;
mod net;
mod power;
mod trim;
mod vcpu;
mod vcpu_control;

use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;

use crate::sandbox::Watchdog;
use crate::state::FreezeState;

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
    /// Present only when the policy grants `fsfreeze` to the command.
    freeze: Option<Arc<Mutex<FreezeState>>>,
    /// Bytes a `files.read` staged for the reply's staged member.
    pub staged: Vec<u8>,
    /// Handles `files.open` created during this call, closed again if the
    /// call fails.
    pub opened: Vec<i64>,
    memory_limit: usize,
    /// All the instance's linear memories together.
    memory_used: usize,
    /// Set when the component tried to grow past `memory_limit`, so the
    /// resulting trap can be reported as the limit it is.
    pub memory_limit_hit: bool,
    /// The call's time limit.
    watchdog: Watchdog,
}

impl HostState {
    pub fn new(
        files: Option<Arc<Mutex<FileTable>>>,
        freeze: Option<Arc<Mutex<FreezeState>>>,
        staged: Vec<u8>,
        memory_limit: usize,
        watchdog: Watchdog,
    ) -> Self {
        HostState {
            files,
            freeze,
            staged,
            opened: Vec::new(),
            memory_limit,
            memory_used: 0,
            memory_limit_hit: false,
            watchdog,
        }
    }

    /// Runs a privileged operation that may take long (a CPU going offline,
    /// a freeze, a suspend) without counting its time against the
    /// component's limit: a timeout reported after the side effect happened
    /// would be a lie.
    fn outside_time_limit<R>(&self, operation: impl FnOnce() -> R) -> R {
        self.watchdog.paused(operation)
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let used = self
            .memory_used
            .saturating_add(desired.saturating_sub(current));
        if used > self.memory_limit {
            self.memory_limit_hit = true;
            wasmtime::bail!("memory limit of {} MiB exceeded", self.memory_limit >> 20);
        }
        self.memory_used = used;
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
