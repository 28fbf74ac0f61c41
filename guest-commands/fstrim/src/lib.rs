//! sandga's command component for WIT world `fstrim`: guest-fstrim.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`TrimHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::{TrimError, TrimHost, Trimmed};
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: TrimHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "fstrim",
        &[("guest-fstrim", commands::fstrim)],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "fstrim", path: "../../wit" });

    use sandga::agent::mounts;
    use sandga::agent::trim::{self, TrimError};

    /// The real host: the `mounts` and `trim` imports.
    struct WitHost;

    impl crate::TrimHost for WitHost {
        fn mountinfo(&mut self) -> Result<String, String> {
            mounts::mountinfo()
        }

        fn trim(
            &mut self,
            mountpoint: &str,
            minimum: u64,
        ) -> Result<crate::Trimmed, crate::TrimError> {
            match trim::trim(mountpoint, minimum) {
                Ok(done) => Ok(crate::Trimmed {
                    bytes: done.bytes,
                    minimum: done.minimum,
                }),
                Err(TrimError::NotMounted) => Err(crate::TrimError::NotMounted),
                Err(TrimError::Unsupported) => Err(crate::TrimError::Unsupported),
                Err(TrimError::Open(why)) => Err(crate::TrimError::Open(why)),
                Err(TrimError::Trim(why)) => Err(crate::TrimError::Trim(why)),
            }
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;
