//! sandga's command component for WIT world `shutdown`: guest-shutdown.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`PowerHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::{PowerHost, ShutdownMode};
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: PowerHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "shutdown",
        &[("guest-shutdown", commands::shutdown)],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "shutdown", path: "../../wit" });

    use sandga::agent::power::{self, ShutdownMode};

    /// The real host: the `power` import.
    struct WitHost;

    impl crate::PowerHost for WitHost {
        fn shutdown(&mut self, mode: crate::ShutdownMode) -> Result<(), String> {
            power::shutdown(match mode {
                crate::ShutdownMode::Powerdown => ShutdownMode::Powerdown,
                crate::ShutdownMode::Halt => ShutdownMode::Halt,
                crate::ShutdownMode::Reboot => ShutdownMode::Reboot,
            })
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;
