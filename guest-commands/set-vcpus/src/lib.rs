//! sandga's command component for WIT world `set-vcpus`: guest-set-vcpus.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`VcpuHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::{LogicalCpu, VcpuHost};
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: VcpuHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "set-vcpus",
        &[("guest-set-vcpus", commands::set_vcpus)],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "set-vcpus", path: "../../wit" });

    use sandga::agent::{vcpu, vcpu_control};

    /// The real host: the `vcpu` and `vcpu-control` imports.
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

        fn set_online(&mut self, id: u64, online: bool) -> Result<(), String> {
            vcpu_control::set_online(id, online)
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;
