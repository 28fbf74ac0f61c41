//! The one wasmtime `Engine` configuration, shared by the daemon (which only
//! loads precompiled components) and the precompiler (`xtask/precompile`,
//! which compiles them). A `.cwasm` loads only into an engine configured
//! exactly like the one that compiled it, so both sides call [`config`].
//!
//! Components are compiled for the architecture's baseline, never for the
//! build machine's CPU: a guest's virtual CPU (QEMU's `qemu64`, a
//! migration-safe named model) often lacks what the build machine has, and
//! a `.cwasm` that uses one missing feature does not load at all.

use anyhow::{Context, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Largest linear memory any command may have; per-command policy limits are
/// at most this. Sized for a 48 MiB `guest-file-write` payload decoded in the
/// sandbox (its base64 text plus the bytes).
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// Dirty memory up to this much is reset in place between calls rather than
/// returned to the kernel; a bulk write's larger memory is returned.
const KEEP_RESIDENT: usize = 8 << 20;

/// Commands run one at a time; a few slots leave room for a slot still being
/// reset while the next call starts.
const POOL_SLOTS: u32 = 4;

/// The code-generation target: the target this crate is built for, with
/// no optional CPU feature. Naming a target explicitly stops cranelift from
/// inferring the build machine's features, and none is enabled back. On
/// x86-64 that is the original x86-64 (SSE2), which every x86-64 CPU and
/// every QEMU CPU model has; BENCHMARKS.md measures what it costs.
/// (Loading checks only the architecture and OS of a component's target,
/// so a precompiler on glibc serves a daemon on musl.)
pub const TARGET: &str = env!("SANDGA_ENGINE_TARGET");

pub fn config() -> Result<Config> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_SLOTS)
        .total_core_instances(POOL_SLOTS * 8)
        .total_memories(POOL_SLOTS)
        .total_tables(POOL_SLOTS * 8)
        .max_memory_size(MAX_MEMORY_BYTES)
        // Between calls, reset only the pages a call dirtied (found with
        // PAGEMAP_SCAN on Linux 6.7+) and keep them mapped: no madvise, no
        // page faults and no TLB-shootdown IPIs per call. Older kernels fall
        // back to returning the pages.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);

    let mut config = Config::new();
    config
        .target(TARGET)
        .map_err(anyhow::Error::from)
        .context("setting the code-generation target")?
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // Time limits: the watchdog bumps the epoch when a call overruns.
        .epoch_interruption(true)
        // Calls are synchronous; the async machinery only adds per-call cost.
        .concurrency_support(false)
        // A trap is reported by its kind; walking the guest stack is wasted work.
        .wasm_backtrace_max_frames(None)
        // The daemon's wasmtime is built without these; a component compiled
        // with them enabled would not load.
        .gc_support(false)
        .wasm_gc(false)
        .wasm_stack_switching(false);
    Ok(config)
}

pub fn engine() -> Result<Engine> {
    Engine::new(&config()?)
        .map_err(anyhow::Error::from)
        .context("configuring the WebAssembly engine")
}

/// An engine that believes the CPU has none of the architecture's optional
/// features: a `.cwasm` that deserializes into it loads on every CPU of the
/// architecture. For checking artifacts only: code must never run in it.
pub fn baseline_checker() -> Result<Engine> {
    let mut config = config()?;
    // SAFETY: claiming fewer features than the CPU has only makes loading
    // stricter. Nothing is ever instantiated in this engine, so no code
    // compiled under the claim runs.
    unsafe {
        config.detect_host_feature(|_| Some(false));
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("configuring the baseline-checking engine")
}
