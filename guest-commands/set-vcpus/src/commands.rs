//! guest-set-vcpus: for each requested CPU, in order, change its `online`
//! switch if its state differs, as qemu-ga does; the host behind
//! [`VcpuHost`] does the write.

use qapi_args::Args;

use crate::Reply;

/// `sandga:agent/vcpu.logical-cpu`, mirrored so the logic builds natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicalCpu {
    pub id: u64,
    /// `None`: the CPU has no `online` switch.
    pub online: Option<bool>,
}

/// The `vcpu` and `vcpu-control` interfaces: the wit-bindgen imports in the
/// component, a fake in tests.
pub trait VcpuHost {
    fn logical_cpus(&mut self) -> Result<Vec<LogicalCpu>, String>;
    fn set_online(&mut self, id: u64, online: bool) -> Result<(), String>;
}

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// `{vcpus: [{logical-id, online, *can-offline}]}` → the number of entries
/// processed. Processing stops at the first failure, which is reported
/// only if it was the first entry (the schema's partial-success rule).
pub fn set_vcpus(host: &mut impl VcpuHost, mut args: Args) -> Result<Reply, String> {
    let mut requests = Vec::new();
    for element in args.required("vcpus")?.list()? {
        let mut cpu = element.object()?;
        let id = cpu.int("logical-id")?;
        let online = cpu.bool("online")?;
        // Output-only; accepted and ignored on input, as qemu-ga does.
        cpu.opt_bool("can-offline")?;
        cpu.finish()?;
        requests.push((id, online));
    }
    args.finish()?;
    // The schema: an empty list is processed (0) without touching the guest.
    if requests.is_empty() {
        return Ok(Reply::json("0".into()));
    }
    let cpus = host.logical_cpus()?;
    let mut processed: i64 = 0;
    for (id, online) in requests {
        match set_one(host, &cpus, id, online) {
            Ok(()) => processed += 1,
            Err(e) if processed == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(Reply::json(processed.to_string()))
}

fn set_one(
    host: &mut impl VcpuHost,
    cpus: &[LogicalCpu],
    id: i64,
    online: bool,
) -> Result<(), String> {
    let cpu = u64::try_from(id)
        .ok()
        .and_then(|id| cpus.iter().find(|cpu| cpu.id == id))
        .ok_or_else(|| format!("open(\"{CPU_DIR}/cpu{id}/\"): No such file or directory"))?;
    match cpu.online {
        // No switch: always online; asking for offline is an error.
        None if online => Ok(()),
        None => Err(format!("logical processor #{id} can't be offlined")),
        Some(now) if now == online => Ok(()),
        Some(_) => host.set_online(cpu.id, online),
    }
}
