//! The one wasmtime `Engine` configuration, shared by the daemon (which only
//! loads precompiled components) and `cargo xtask build-components` (which
//! compiles them). A `.cwasm` loads only into an engine configured exactly
//! like the one that compiled it, so both sides call [`config`].

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

pub fn config() -> Config {
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
    config
}

pub fn engine() -> Result<Engine> {
    Engine::new(&config())
        .map_err(anyhow::Error::from)
        .context("configuring the WebAssembly engine")
}

/// Compiles a component to the native `.cwasm` form the daemon loads.
#[cfg(feature = "compiler")]
pub fn precompile(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>> {
    let cwasm = engine
        .precompile_component(wasm)
        .map_err(anyhow::Error::from)
        .context("compiling component")?;
    Ok(cwasm)
}
