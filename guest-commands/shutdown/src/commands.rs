//! guest-shutdown: the mode as qemu-ga reads it; the host asks init.

use qapi_args::Args;

use crate::Reply;

/// `sandga:agent/power.shutdown-mode`, mirrored so the logic builds natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    Powerdown,
    Halt,
    Reboot,
}

/// The `power` interface: the wit-bindgen import in the component, a fake
/// in tests.
pub trait PowerHost {
    fn shutdown(&mut self, mode: ShutdownMode) -> Result<(), String>;
}

/// `{*mode: str}` → `{}` (the runtime sends nothing: success-response false).
pub fn shutdown(host: &mut impl PowerHost, mut args: Args) -> Result<Reply, String> {
    let mode = args.opt_string("mode")?;
    args.finish()?;
    let mode = match mode.as_deref() {
        None | Some("powerdown") => ShutdownMode::Powerdown,
        Some("halt") => ShutdownMode::Halt,
        Some("reboot") => ShutdownMode::Reboot,
        // qemu-ga's text, its missing parenthesis included.
        Some(_) => return Err("mode is invalid (valid values are: halt|powerdown|reboot".into()),
    };
    host.shutdown(mode)?;
    Ok(Reply::json("{}".into()))
}
