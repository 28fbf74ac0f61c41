//! `/proc/self/mountinfo` as qemu-ga reads it (`build_fs_mount_list`):
//! the mount's device numbers, directory, type and source, with the
//! kernel's octal escapes (`\040` for a space) decoded. Shared by the
//! `freeze` component, which chooses mounts, and the runtime, which checks
//! again that a directory it is asked to freeze is mounted.

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    pub mountpoint: String,
    pub fstype: String,
    pub source: String,
}

/// Every well-formed line, in the kernel's order (parents first).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let _root = fields.next()?;
    let mountpoint = fields.next()?;
    let mut after = after.split(' ');
    let fstype = after.next()?;
    let source = after.next()?;
    Some(Mount {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        mountpoint: unescape(mountpoint),
        fstype: unescape(fstype),
        source: unescape(source),
    })
}

/// The mounts qemu-ga freezes and trims: real devices only (major 0 is
/// tmpfs, proc, overlay, NFS...), each device once (bind mounts and
/// duplicates skipped, as qemu-ga 10 does).
pub fn device_mounts(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut seen: Vec<(u32, u32)> = Vec::new();
    mounts
        .into_iter()
        .filter(|mount| mount.major != 0)
        .filter(|mount| {
            let device = (mount.major, mount.minor);
            let first = !seen.contains(&device);
            seen.push(device);
            first
        })
        .collect()
}

/// Decodes `\NNN` octal escapes; anything else is kept as it is.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let digits = bytes.get(i + 1..i + 4);
        let octal = digits.filter(|d| byte == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal.map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'))) {
            Some(value) if value <= 0xff => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
24 22 254:2 / /mnt/my\\040data rw,relatime shared:2 master:1 - ext4 /dev/vda2 rw
25 22 254:2 /sub /srv/bind rw,relatime shared:2 - ext4 /dev/vda2 rw
26 22 0:30 / /run rw - tmpfs tmpfs rw
not a mountinfo line
";

    #[test]
    fn parses_fields_and_escapes() {
        let mounts = parse(SAMPLE);
        assert_eq!(mounts.len(), 5);
        assert_eq!(
            mounts[2],
            Mount {
                major: 254,
                minor: 2,
                mountpoint: "/mnt/my data".into(),
                fstype: "ext4".into(),
                source: "/dev/vda2".into(),
            }
        );
    }

    #[test]
    fn device_mounts_skip_virtual_filesystems_and_repeats() {
        let chosen: Vec<String> = device_mounts(parse(SAMPLE))
            .into_iter()
            .map(|m| m.mountpoint)
            .collect();
        assert_eq!(chosen, ["/", "/mnt/my data"]);
    }

    #[test]
    fn unescape_keeps_what_is_not_an_octal_escape() {
        assert_eq!(unescape(r"a\134b"), r"a\b");
        assert_eq!(unescape(r"a\9z\"), r"a\9z\");
        assert_eq!(unescape(r"\777"), r"\777");
    }
}
