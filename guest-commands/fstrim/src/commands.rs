//! guest-fstrim as qemu-ga does it (`qmp_guest_fstrim`): every filesystem on
//! a real device, once; a failure is reported for its path and never fails
//! the command; the list comes out in reverse mount order (qemu-ga prepends
//! each result).

use qapi_args::Args;
use serde_json::{Value, json};

use crate::Reply;

/// `sandga:agent/trim.trimmed`, mirrored so the logic builds natively.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trimmed {
    pub bytes: u64,
    pub minimum: u64,
}

/// `sandga:agent/trim.trim-error`, mirrored likewise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrimError {
    NotMounted,
    Unsupported,
    Open(String),
    Trim(String),
}

/// The `mounts` and `trim` interfaces: the wit-bindgen imports in the
/// component, a fake in tests.
pub trait TrimHost {
    fn mountinfo(&mut self) -> Result<String, String>;
    fn trim(&mut self, mountpoint: &str, minimum: u64) -> Result<Trimmed, TrimError>;
}

/// `{*minimum: int}` → `{paths: [{path, trimmed, minimum} | {path, error}]}`.
pub fn fstrim(host: &mut impl TrimHost, mut args: Args) -> Result<Reply, String> {
    // qemu-ga hands the int64 to the kernel's u64 as it is (-1: the
    // largest minimum, which the kernel refuses).
    let minimum = args.opt_int("minimum")?.unwrap_or(0) as u64;
    args.finish()?;
    let mounts = mountinfo::device_mounts(mountinfo::parse(&host.mountinfo()?));
    let paths: Vec<Value> = mounts
        .iter()
        .rev()
        .map(|mount| {
            let path = &mount.mountpoint;
            match host.trim(path, minimum) {
                Ok(done) => json!({"path": path, "trimmed": done.bytes, "minimum": done.minimum}),
                Err(error) => {
                    let error = match error {
                        TrimError::Unsupported => "trim not supported".to_string(),
                        TrimError::Open(why) => format!("failed to open: {why}"),
                        TrimError::Trim(why) => format!("failed to trim: {why}"),
                        TrimError::NotMounted => "failed to open: not mounted".to_string(),
                    };
                    json!({"path": path, "error": error})
                }
            }
        })
        .collect();
    Ok(Reply::json(json!({ "paths": paths }).to_string()))
}
