//! The command logic against a fake `mounts`/`fsfreeze` host.

use crate::{FreezeError, FreezeHost, run};

const MOUNTINFO: &str = "\
22 1 254:1 / / rw - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw - proc proc rw
24 22 254:2 / /data rw - ext4 /dev/vda2 rw
25 24 254:3 / /data/logs rw - xfs /dev/vda3 rw
26 22 254:2 / /srv/bind rw - ext4 /dev/vda2 rw
27 22 0:5 / /dev/shm rw - tmpfs tmpfs rw
";

/// Frozen counts per mountpoint; `fail` makes freezing one fail.
#[derive(Default)]
struct Fake {
    frozen: Vec<String>,
    log: Vec<String>,
    fail: Option<(&'static str, FreezeError)>,
}

impl FreezeHost for Fake {
    fn mountinfo(&mut self) -> Result<String, String> {
        Ok(MOUNTINFO.into())
    }

    fn freeze(&mut self, mountpoint: &str) -> Result<(), FreezeError> {
        self.log.push(format!("freeze {mountpoint}"));
        if let Some((path, error)) = &self.fail
            && *path == mountpoint
        {
            return Err(error.clone());
        }
        self.frozen.push(mountpoint.to_string());
        Ok(())
    }

    fn thaw(&mut self, mountpoint: &str) -> Result<bool, String> {
        self.log.push(format!("thaw {mountpoint}"));
        let was = self.frozen.iter().any(|f| f == mountpoint);
        self.frozen.retain(|f| f != mountpoint);
        Ok(was)
    }
}

fn call(host: &mut Fake, name: &str, arguments: &str) -> Result<String, String> {
    run(host, name, arguments).map(|reply| reply.json)
}

#[test]
fn freezes_device_filesystems_once_children_first() {
    let mut host = Fake::default();
    assert_eq!(
        call(&mut host, "guest-fsfreeze-freeze", "{}"),
        Ok("3".into())
    );
    assert_eq!(host.log, ["freeze /data/logs", "freeze /data", "freeze /"]);
    host.log.clear();
    assert_eq!(call(&mut host, "guest-fsfreeze-thaw", "{}"), Ok("3".into()));
    assert_eq!(host.log, ["thaw /", "thaw /data", "thaw /data/logs"]);
    assert_eq!(call(&mut host, "guest-fsfreeze-thaw", "{}"), Ok("0".into()));
}

#[test]
fn freeze_list_freezes_only_the_given_mountpoints() {
    let mut host = Fake::default();
    let list = r#"{"mountpoints":["/data","/"]}"#;
    assert_eq!(
        call(&mut host, "guest-fsfreeze-freeze-list", list),
        Ok("2".into())
    );
    assert_eq!(host.log, ["freeze /data", "freeze /"]);
    assert_eq!(
        call(&mut host, "guest-fsfreeze-freeze-list", "{}"),
        Ok("3".into())
    );
}

#[test]
fn freeze_list_refuses_what_is_not_a_freezable_mountpoint() {
    let mut host = Fake::default();
    for path in ["/nope", "/proc", "/srv/bind"] {
        let list = format!(r#"{{"mountpoints":["/data","{path}"]}}"#);
        assert_eq!(
            call(&mut host, "guest-fsfreeze-freeze-list", &list),
            Err(format!(
                "{path} is not a mounted filesystem that can be frozen"
            ))
        );
    }
    assert!(host.log.is_empty(), "nothing frozen: {:?}", host.log);
    assert_eq!(
        call(
            &mut host,
            "guest-fsfreeze-freeze-list",
            r#"{"mountpoints":[1]}"#
        ),
        Err("Invalid parameter type for 'mountpoints[0]', expected: string".into())
    );
}

#[test]
fn a_failure_thaws_what_was_frozen_and_is_returned() {
    let mut host = Fake {
        fail: Some(("/", FreezeError::Freeze("Input/output error".into()))),
        ..Fake::default()
    };
    assert_eq!(
        call(&mut host, "guest-fsfreeze-freeze", "{}"),
        Err("failed to freeze /: Input/output error".into())
    );
    assert!(host.frozen.is_empty(), "left frozen: {:?}", host.frozen);
    let mut host = Fake {
        fail: Some(("/data", FreezeError::Open("Permission denied".into()))),
        ..Fake::default()
    };
    assert_eq!(
        call(&mut host, "guest-fsfreeze-freeze", "{}"),
        Err("failed to open /data: Permission denied".into())
    );
    assert!(host.frozen.is_empty());
}

#[test]
fn unsupported_and_busy_filesystems_are_skipped_uncounted() {
    for error in [FreezeError::Unsupported, FreezeError::Busy] {
        let mut host = Fake {
            fail: Some(("/data/logs", error)),
            ..Fake::default()
        };
        assert_eq!(
            call(&mut host, "guest-fsfreeze-freeze", "{}"),
            Ok("2".into())
        );
    }
}
