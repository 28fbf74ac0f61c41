//! Hands the crate its target triple, so the engine names exactly the
//! daemon's target (a musl daemon must not expect glibc-targeted code).

fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo:rustc-env=SANDGA_ENGINE_TARGET={target}");
}
