//! sandga's command component for WIT world `freeze`: guest-fsfreeze-freeze,
//! -freeze-list and -thaw. (guest-fsfreeze-status is the runtime's: the
//! frozen state is its own.)
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`FreezeHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::{FreezeError, FreezeHost};
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: FreezeHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "freeze",
        &[
            ("guest-fsfreeze-freeze", commands::freeze),
            ("guest-fsfreeze-freeze-list", commands::freeze_list),
            ("guest-fsfreeze-thaw", commands::thaw),
        ],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "freeze", path: "../../wit" });

    use sandga::agent::fsfreeze::{self, FreezeError};
    use sandga::agent::mounts;

    /// The real host: the `mounts` and `fsfreeze` imports.
    struct WitHost;

    impl crate::FreezeHost for WitHost {
        fn mountinfo(&mut self) -> Result<String, String> {
            mounts::mountinfo()
        }

        fn freeze(&mut self, mountpoint: &str) -> Result<(), crate::FreezeError> {
            fsfreeze::freeze(mountpoint).map_err(|e| match e {
                FreezeError::NotMounted => crate::FreezeError::NotMounted,
                FreezeError::Unsupported => crate::FreezeError::Unsupported,
                FreezeError::Busy => crate::FreezeError::Busy,
                FreezeError::Open(why) => crate::FreezeError::Open(why),
                FreezeError::Freeze(why) => crate::FreezeError::Freeze(why),
            })
        }

        fn thaw(&mut self, mountpoint: &str) -> Result<bool, String> {
            fsfreeze::thaw(mountpoint)
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;
