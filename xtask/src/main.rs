//! Development tasks: `cargo xtask <task>`.
//!
//! - `build-components`: builds every crate in `guest-commands/` for
//!   wasm32-wasip2 and precompiles each component to `target/components/*.cwasm`
//!   with the daemon's exact engine configuration, for the architecture's
//!   baseline CPU (`xtask/precompile`, the only build with a compiler). Test-only crates named
//!   `test-<component>` go to `target/test-components/<component>.cwasm`.
//! - `run -- <sandga options>`: builds the components and the daemon, runs it.
//! - `test`: everything CI checks: formatting, clippy, components, tests,
//!   including the VM tests (`tests/vm`), which boot a QEMU guest.
//!   `test --vm`: only the VM tests.
//! - `bench [--quick] [--reps N]`: builds the release daemon and benchmarks it
//!   against Debian's qemu-ga (`/usr/sbin/qemu-ga`) on this machine; prints a
//!   table and writes it to `BENCHMARKS.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;

const WASM_TARGET: &str = "wasm32-wasip2";
const USAGE: &str = "usage: cargo xtask <build-components | run -- <sandga options> \
                     | test [--vm] | bench [--quick] [--reps N]>";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.skip_while(|a| a == "--").collect();
    match task.as_str() {
        "build-components" => build_components().map(|_| ()),
        "run" => run(&rest),
        "test" if rest.iter().any(|a| a == "--vm") => test_vm(),
        "test" => test(),
        "bench" => bench::bench(&rest),
        _ => bail!("{USAGE}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn status(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Adds the wasm32-wasip2 target through rustup if it is missing, so that a
/// fresh machine needs no step before `cargo xtask run`.
fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains(WASM_TARGET));
    match installed {
        Ok(true) => Ok(()),
        Ok(false) => status(Command::new("rustup").args(["target", "add", WASM_TARGET])),
        // No rustup: the toolchain is managed otherwise; let cargo say what
        // is missing.
        Err(_) => Ok(()),
    }
}

/// Returns the directory holding the `.cwasm` files.
fn build_components() -> Result<PathBuf> {
    ensure_wasm_target()?;
    let root = root();
    let guests = root.join("guest-commands");
    status(
        cargo()
            .current_dir(&guests)
            .args(["build", "--release", "--target", WASM_TARGET])
            // Host-target settings must not leak into the wasm build.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS"),
    )
    .context("building components (is the target installed? `rustup target add wasm32-wasip2`)")?;

    let built = guests.join("target/wasm32-wasip2/release");
    let out = root.join("target/components");
    let test_out = root.join("target/test-components");
    for dir in [&out, &test_out] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // (wasm in, cwasm out) for every component built.
    let mut jobs = Vec::new();
    for entry in
        std::fs::read_dir(&built).with_context(|| format!("reading {}", built.display()))?
    {
        let path = entry?.path();
        let (Some("wasm"), Some(name)) = (
            path.extension().and_then(|e| e.to_str()),
            path.file_stem().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        // `test-<component>` crates are test-only stand-ins: kept apart so
        // the daemon never embeds them.
        let target = match name.strip_prefix("test_") {
            Some(stands_in_for) => test_out.join(format!("{stands_in_for}.cwasm")),
            None => out.join(format!("{name}.cwasm")),
        };
        jobs.push(path.clone().into_os_string());
        jobs.push(target.into_os_string());
    }
    if jobs.is_empty() {
        bail!("no components found in {}", built.display());
    }
    status(precompiler(&root, "run").arg("--").args(&jobs)).context("precompiling components")?;
    Ok(out)
}

fn test_vm() -> Result<()> {
    build_components()?;
    status(
        cargo()
            .current_dir(root())
            .args(["test", "-p", "sandga", "--test", "vm"]),
    )
}

/// `cargo <verb>` on the precompiler, a workspace of its own (the only build
/// with cranelift) that shares this workspace's target directory.
fn precompiler(root: &Path, verb: &str) -> Command {
    let mut command = cargo();
    command
        .current_dir(root)
        .args([verb, "--quiet", "--manifest-path"])
        .arg(root.join("xtask/precompile/Cargo.toml"))
        .arg("--target-dir")
        .arg(root.join("target"));
    command
}

/// Cargo unifies a dependency's features across everything one build
/// builds, so a compiler anywhere in this workspace (dev and build
/// dependencies included) would end up in the daemon (`cargo build
/// --workspace`). It lives in `xtask/precompile` only.
fn no_code_generator_in_workspace(root: &Path) -> Result<()> {
    let lock = root.join("Cargo.lock");
    let text =
        std::fs::read_to_string(&lock).with_context(|| format!("reading {}", lock.display()))?;
    if text
        .lines()
        .any(|line| line.trim() == r#"name = "cranelift-codegen""#)
    {
        bail!("the workspace links a code generator: cranelift-codegen is in Cargo.lock");
    }
    Ok(())
}

fn run(args: &[String]) -> Result<()> {
    build_components()?;
    status(
        cargo()
            .current_dir(root())
            .args(["run", "--quiet", "-p", "sandga", "--"])
            .args(args),
    )
}

fn test() -> Result<()> {
    let root = root();
    status(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))
        .context("formatting differs: run `cargo fmt --all`")?;
    status(
        cargo()
            .current_dir(root.join("guest-commands"))
            .args(["fmt", "--all", "--check"]),
    )
    .context("component formatting differs: run `cargo fmt --all` in guest-commands")?;
    status(
        cargo()
            .current_dir(root.join("xtask/precompile"))
            .args(["fmt", "--check"]),
    )
    .context("precompiler formatting differs: run `cargo fmt` in xtask/precompile")?;
    status(cargo().current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    no_code_generator_in_workspace(&root)?;
    status(
        precompiler(&root, "clippy")
            .arg("--all-targets")
            .args(["--", "-D", "warnings"]),
    )?;
    build_components()?;
    // The precompiler's own check that it refuses non-baseline code.
    status(&mut precompiler(&root, "test"))?;
    // The components' own logic, natively (the crates are also rlibs).
    status(
        cargo()
            .current_dir(root.join("guest-commands"))
            .env_remove("CARGO_TARGET_DIR")
            .arg("test"),
    )?;
    // Last, so that the run ends with the daemon's test results.
    status(cargo().current_dir(&root).args(["test", "-p", "sandga"]))
}
