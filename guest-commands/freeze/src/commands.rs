//! Freezing and thawing as qemu-ga does it (`qmp_guest_fsfreeze_*`): the
//! filesystems on real devices, each once, frozen in reverse mount order
//! (children before their parents) and thawed in mount order; a failure
//! thaws what was frozen and is returned.

use mountinfo::Mount;
use qapi_args::Args;

use crate::Reply;

/// `sandga:agent/fsfreeze.freeze-error`, mirrored so the logic builds natively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FreezeError {
    NotMounted,
    Unsupported,
    Busy,
    Open(String),
    Freeze(String),
}

/// The `mounts` and `fsfreeze` interfaces: the wit-bindgen imports in the
/// component, a fake in tests.
pub trait FreezeHost {
    fn mountinfo(&mut self) -> Result<String, String>;
    fn freeze(&mut self, mountpoint: &str) -> Result<(), FreezeError>;
    fn thaw(&mut self, mountpoint: &str) -> Result<bool, String>;
}

fn freezable(host: &mut impl FreezeHost) -> Result<Vec<Mount>, String> {
    Ok(mountinfo::device_mounts(mountinfo::parse(
        &host.mountinfo()?,
    )))
}

/// `{}` → the number of filesystems frozen.
pub fn freeze(host: &mut impl FreezeHost, args: Args) -> Result<Reply, String> {
    args.finish()?;
    freeze_mounts(host, None)
}

/// `{*mountpoints: [str]}` → the number frozen, of those given only. Unlike
/// qemu-ga, which ignores a name that matches no mount, a mountpoint that
/// cannot be frozen is an error, so a typo never passes for a freeze.
pub fn freeze_list(host: &mut impl FreezeHost, mut args: Args) -> Result<Reply, String> {
    let wanted = match args.take("mountpoints") {
        Some(list) => Some(
            list.list()?
                .iter()
                .map(|element| element.string())
                .collect::<Result<Vec<String>, String>>()?,
        ),
        None => None,
    };
    args.finish()?;
    freeze_mounts(host, wanted)
}

fn freeze_mounts(host: &mut impl FreezeHost, wanted: Option<Vec<String>>) -> Result<Reply, String> {
    let mounts = freezable(host)?;
    if let Some(wanted) = &wanted
        && let Some(unknown) = wanted
            .iter()
            .find(|path| !mounts.iter().any(|m| &m.mountpoint == *path))
    {
        return Err(format!(
            "{unknown} is not a mounted filesystem that can be frozen"
        ));
    }
    let mut frozen: u64 = 0;
    for mount in mounts.iter().rev() {
        let path = &mount.mountpoint;
        if wanted.as_ref().is_some_and(|wanted| !wanted.contains(path)) {
            continue;
        }
        let failure = match host.freeze(path) {
            Ok(()) => {
                frozen += 1;
                continue;
            }
            // As qemu-ga: nothing to freeze here, not counted.
            Err(FreezeError::Unsupported | FreezeError::Busy) => continue,
            Err(FreezeError::Open(why)) => format!("failed to open {path}: {why}"),
            Err(FreezeError::Freeze(why)) => format!("failed to freeze {path}: {why}"),
            Err(FreezeError::NotMounted) => format!("failed to freeze {path}: not mounted"),
        };
        thaw_mounts(host, &mounts);
        return Err(failure);
    }
    Ok(Reply::json(frozen.to_string()))
}

/// Thaws every mount in mount order; the number that were frozen. A mount
/// that cannot be opened is skipped.
fn thaw_mounts(host: &mut impl FreezeHost, mounts: &[Mount]) -> u64 {
    let thawed = mounts
        .iter()
        .filter(|mount| host.thaw(&mount.mountpoint) == Ok(true))
        .count();
    thawed as u64
}

/// `{}` → the number of filesystems thawed.
pub fn thaw(host: &mut impl FreezeHost, args: Args) -> Result<Reply, String> {
    args.finish()?;
    let mounts = freezable(host)?;
    Ok(Reply::json(thaw_mounts(host, &mounts).to_string()))
}
