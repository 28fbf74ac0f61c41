//! guest-get-vcpus: the CPUs listed by the host behind [`VcpuHost`], shaped
//! as qemu-ga's GuestLogicalProcessor list.

use qapi_args::Args;
use serde_json::json;

use crate::Reply;

/// `sandga:agent/vcpu.logical-cpu`, mirrored so the logic builds natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicalCpu {
    pub id: u64,
    /// `None`: the CPU has no `online` switch.
    pub online: Option<bool>,
}

/// The `vcpu` interface: the wit-bindgen import in the component, a fake in
/// tests.
pub trait VcpuHost {
    fn logical_cpus(&mut self) -> Result<Vec<LogicalCpu>, String>;
}

/// `{}` → `[{logical-id, online, can-offline}]`, in the host's order.
pub fn get_vcpus(host: &mut impl VcpuHost, args: Args) -> Result<Reply, String> {
    args.finish()?;
    let cpus: Vec<_> = host
        .logical_cpus()?
        .into_iter()
        .map(|cpu| {
            // A CPU without an `online` switch is online and cannot go
            // offline (qemu-ga: ENOENT on `online`).
            json!({
                "logical-id": cpu.id,
                "online": cpu.online.unwrap_or(true),
                "can-offline": cpu.online.is_some(),
            })
        })
        .collect();
    Ok(Reply::json(serde_json::Value::from(cpus).to_string()))
}
