//! sandga's command component for WIT world `set-time`: guest-set-time.
//!
//! The command logic ([`run`], `commands`) is plain Rust over
//! [`ClockControlHost`] so `cargo test` runs it natively with a fake host;
//! the wit-bindgen glue is built for wasm32 only, because its export names
//! do not link natively.

mod commands;

pub use commands::ClockControlHost;
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: ClockControlHost>(
    host: &mut H,
    name: &str,
    arguments: &str,
) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "set-time",
        &[("guest-set-time", commands::set_time)],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "set-time", path: "../../wit" });

    use sandga::agent::clock_control;

    /// The real host: the `clock-control` import.
    struct WitHost;

    impl crate::ClockControlHost for WitHost {
        fn set_system_time(&mut self, nanoseconds: i64) -> Result<(), String> {
            clock_control::set_system_time(nanoseconds)
        }

        fn save_to_hardware_clock(&mut self) -> Result<(), String> {
            clock_control::save_to_hardware_clock()
        }

        fn load_from_hardware_clock(&mut self) -> Result<(), String> {
            clock_control::load_from_hardware_clock()
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;
