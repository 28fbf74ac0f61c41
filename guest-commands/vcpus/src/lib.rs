//! sandga's command component for WIT world `vcpus`: guest-get-vcpus.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`VcpuHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::{LogicalCpu, VcpuHost};
use qapi_args::Args;

/// `sandga:agent/command.reply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub json: String,
    pub staged_member: Option<&'static str>,
}

type Handler<H> = fn(&mut H, Args) -> Result<Reply, String>;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: VcpuHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    let handler: Handler<H> = match name {
        "guest-get-vcpus" => commands::get_vcpus,
        _ => return Err(format!("component 'vcpus' does not implement {name}")),
    };
    handler(host, Args::parse(arguments)?)
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "vcpus", path: "../../wit" });

    use exports::sandga::agent::command::{CommandError, Guest, Reply};
    use sandga::agent::vcpu;

    /// The real host: the `vcpu` import.
    struct WitHost;

    impl crate::VcpuHost for WitHost {
        fn logical_cpus(&mut self) -> Result<Vec<crate::LogicalCpu>, String> {
            Ok(vcpu::logical_cpus()?
                .into_iter()
                .map(|cpu| crate::LogicalCpu {
                    id: cpu.id,
                    online: cpu.online,
                })
                .collect())
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
