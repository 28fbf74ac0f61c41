//! sandga's command component for WIT world `time`: guest-get-time.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`ClockHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::ClockHost;
use qapi_args::Args;

/// `sandga:agent/command.reply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub json: String,
    pub staged_member: Option<&'static str>,
}

type Handler<H> = fn(&mut H, Args) -> Result<Reply, String>;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: ClockHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    let handler: Handler<H> = match name {
        "guest-get-time" => commands::get_time,
        _ => return Err(format!("component 'time' does not implement {name}")),
    };
    handler(host, Args::parse(arguments)?)
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "time", path: "../../wit" });

    use exports::sandga::agent::command::{CommandError, Guest, Reply};
    use sandga::agent::clock;

    /// The real host: the `clock` import.
    struct WitHost;

    impl crate::ClockHost for WitHost {
        fn now(&mut self) -> i64 {
            clock::now()
        }
    }

    struct Component;

    impl Guest for Component {
        fn run(name: String, arguments: String) -> Result<Reply, CommandError> {
            crate::run(&mut WitHost, &name, &arguments)
                .map(|reply| Reply {
                    json: reply.json,
                    staged_member: reply.staged_member.map(str::to_owned),
                })
                .map_err(|desc| CommandError { desc })
        }
    }

    export!(Component);
}

#[cfg(test)]
mod tests;
