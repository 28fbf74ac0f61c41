//! `sandga-precompile IN.wasm OUT.cwasm [IN.wasm OUT.cwasm ...]`: compiles
//! components to the native `.cwasm` form the daemon embeds, with the
//! daemon's own engine configuration (`sandga-engine`), and refuses any
//! result that would not load on every CPU of the architecture.

use std::path::Path;

use anyhow::{Context, Result, bail};
use wasmtime::component::Component;

const USAGE: &str = "usage: sandga-precompile IN.wasm OUT.cwasm [IN.wasm OUT.cwasm ...]";

fn main() -> Result<()> {
    let engine = sandga_engine::engine()?;
    let checker = sandga_engine::baseline_checker()?;
    let mut args = std::env::args().skip(1);
    let mut count = 0;
    while let Some(wasm_path) = args.next() {
        let Some(cwasm_path) = args.next() else {
            bail!("{USAGE}");
        };
        precompile(
            &engine,
            &checker,
            Path::new(&wasm_path),
            Path::new(&cwasm_path),
        )
        .with_context(|| format!("precompiling {wasm_path}"))?;
        count += 1;
    }
    if count == 0 {
        bail!("{USAGE}");
    }
    Ok(())
}

fn precompile(
    engine: &wasmtime::Engine,
    checker: &wasmtime::Engine,
    wasm_path: &Path,
    cwasm_path: &Path,
) -> Result<()> {
    let wasm = std::fs::read(wasm_path).context("reading the component")?;
    let cwasm = engine
        .precompile_component(&wasm)
        .map_err(anyhow::Error::from)
        .context("compiling")?;
    // SAFETY: these bytes were just produced by this process's compiler;
    // the checking engine only validates them and never runs them.
    unsafe { Component::deserialize(checker, &cwasm) }
        .map_err(anyhow::Error::from)
        .context("the compiled component needs more than the baseline CPU")?;
    // Rewriting an unchanged file would make cargo rebuild the daemon.
    if std::fs::read(cwasm_path).ok().as_deref() != Some(&cwasm[..]) {
        std::fs::write(cwasm_path, &cwasm)
            .with_context(|| format!("writing {}", cwasm_path.display()))?;
    }
    println!(
        "{}: {} bytes wasm, {} bytes cwasm",
        cwasm_path.display(),
        wasm.len(),
        cwasm.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use wasmtime::{Engine, Module};

    /// The smallest valid core module: enough to carry the compiler's flags.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn compiled_with(extra_feature: Option<&str>) -> Vec<u8> {
        let mut config = sandga_engine::config().expect("config");
        if let Some(feature) = extra_feature {
            // SAFETY: the code is only compiled and checked, never run.
            unsafe {
                config.cranelift_flag_enable(feature);
            }
        }
        let engine = Engine::new(&config).expect("engine");
        engine.precompile_module(EMPTY_MODULE).expect("compiling")
    }

    fn passes_baseline_check(cwasm: &[u8]) -> bool {
        let checker = sandga_engine::baseline_checker().expect("checker");
        // SAFETY: compiled by this test; checked, never run.
        unsafe { Module::deserialize(&checker, cwasm) }.is_ok()
    }

    #[test]
    fn the_shared_configuration_compiles_for_the_baseline() {
        assert!(passes_baseline_check(&compiled_with(None)));
    }

    #[test]
    fn the_check_refuses_code_for_a_newer_cpu() {
        #[cfg(target_arch = "x86_64")]
        let feature = "has_sse41";
        #[cfg(target_arch = "aarch64")]
        let feature = "has_lse";
        assert!(!passes_baseline_check(&compiled_with(Some(feature))));
    }
}
