//! Embeds the components `cargo xtask build-components` precompiled, so the
//! daemon only ever loads native code that was fixed at build time.
//!
//! The directory is `$SANDGA_COMPONENTS_DIR`, else `<workspace>/target/components`.
//! When it holds nothing, the daemon is built without components and reports
//! their commands disabled, saying why.

use std::env;
use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=SANDGA_COMPONENTS_DIR");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut generated = String::from("pub static COMPONENTS: &[(&str, &[u8])] = &[\n");

    let dir = env::var_os("SANDGA_COMPONENTS_DIR").map_or_else(
        || {
            let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
            manifest.join("../target/components")
        },
        PathBuf::from,
    );
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_string();
            Some((name, path))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        println!(
            "cargo:warning=no components in {}: run `cargo xtask build-components` first",
            dir.display()
        );
    }
    for (name, path) in found {
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            generated,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    generated.push_str("];\n");
    std::fs::write(out.join("embedded_components.rs"), generated)
        .expect("writing embedded_components.rs");
}
