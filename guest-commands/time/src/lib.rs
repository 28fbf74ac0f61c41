//! sandga's command component for WIT world `time`: guest-get-time.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`ClockHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::ClockHost;
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: ClockHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "time",
        &[("guest-get-time", commands::get_time)],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "time", path: "../../wit" });

    use sandga::agent::clock;

    /// The real host: the `clock` import.
    struct WitHost;

    impl crate::ClockHost for WitHost {
        fn now(&mut self) -> i64 {
            clock::now()
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;
