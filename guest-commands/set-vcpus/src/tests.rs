//! The command logic against a fake `vcpu`/`vcpu-control` host.

use crate::{LogicalCpu, VcpuHost, run};

/// cpu0 without a switch, cpu1 online, cpu2 offline; records the writes.
struct Fake {
    cpus: Vec<LogicalCpu>,
    writes: Vec<(u64, bool)>,
    refuse: Option<u64>,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            cpus: vec![
                LogicalCpu {
                    id: 0,
                    online: None,
                },
                LogicalCpu {
                    id: 1,
                    online: Some(true),
                },
                LogicalCpu {
                    id: 2,
                    online: Some(false),
                },
            ],
            writes: Vec::new(),
            refuse: None,
        }
    }
}

impl VcpuHost for Fake {
    fn logical_cpus(&mut self) -> Result<Vec<LogicalCpu>, String> {
        Ok(self.cpus.clone())
    }

    fn set_online(&mut self, id: u64, online: bool) -> Result<(), String> {
        if self.refuse == Some(id) {
            return Err("pwrite: Device or resource busy".into());
        }
        self.writes.push((id, online));
        Ok(())
    }
}

fn set(host: &mut Fake, vcpus: &str) -> Result<String, String> {
    run(host, "guest-set-vcpus", &format!(r#"{{"vcpus":{vcpus}}}"#)).map(|reply| reply.json)
}

#[test]
fn writes_only_what_differs_and_counts_every_entry() {
    let mut host = Fake::new();
    let done = set(
        &mut host,
        r#"[{"logical-id":1,"online":false},{"logical-id":2,"online":true},
            {"logical-id":1,"online":true,"can-offline":true},{"logical-id":0,"online":true}]"#,
    );
    assert_eq!(done, Ok("4".into()));
    // The states are read once, before the writes: entry 3 asks for what
    // cpu1 was, so it writes nothing.
    assert_eq!(host.writes, vec![(1, false), (2, true)]);
}

#[test]
fn a_failing_first_entry_is_an_error_a_later_one_ends_the_count() {
    let mut host = Fake::new();
    assert_eq!(
        set(&mut host, r#"[{"logical-id":0,"online":false}]"#),
        Err("logical processor #0 can't be offlined".into())
    );
    assert_eq!(
        set(&mut host, r#"[{"logical-id":99,"online":true}]"#),
        Err("open(\"/sys/devices/system/cpu/cpu99/\"): No such file or directory".into())
    );
    assert_eq!(
        set(
            &mut host,
            r#"[{"logical-id":1,"online":false},{"logical-id":99,"online":false},{"logical-id":2,"online":true}]"#
        ),
        Ok("1".into())
    );
    assert_eq!(host.writes, vec![(1, false)]);
    host.refuse = Some(2);
    assert_eq!(
        set(&mut host, r#"[{"logical-id":2,"online":true}]"#),
        Err("pwrite: Device or resource busy".into())
    );
}

#[test]
fn arguments_are_checked_before_anything_is_written() {
    let mut host = Fake::new();
    assert_eq!(set(&mut host, "[]"), Ok("0".into()));
    assert_eq!(
        set(
            &mut host,
            r#"[{"logical-id":1,"online":false},{"online":true}]"#
        ),
        Err("Parameter 'vcpus[1].logical-id' is missing".into())
    );
    assert_eq!(
        set(&mut host, r#"[{"logical-id":1,"online":"no"}]"#),
        Err("Invalid parameter type for 'vcpus[0].online', expected: boolean".into())
    );
    assert_eq!(
        run(&mut host, "guest-set-vcpus", "{}").map(|r| r.json),
        Err("Parameter 'vcpus' is missing".into())
    );
    assert!(host.writes.is_empty());
}
