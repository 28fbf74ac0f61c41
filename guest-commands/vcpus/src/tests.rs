//! The command logic against a fake `vcpu` host.

use crate::{LogicalCpu, VcpuHost, run};

struct Fake(Result<Vec<LogicalCpu>, String>);

impl VcpuHost for Fake {
    fn logical_cpus(&mut self) -> Result<Vec<LogicalCpu>, String> {
        self.0.clone()
    }
}

#[test]
fn lists_cpus_in_host_order_with_can_offline() {
    let mut host = Fake(Ok(vec![
        LogicalCpu {
            id: 1,
            online: Some(false),
        },
        LogicalCpu {
            id: 0,
            online: None,
        },
        LogicalCpu {
            id: 2,
            online: Some(true),
        },
    ]));
    let reply = run(&mut host, "guest-get-vcpus", "{}").unwrap();
    let value: serde_json::Value = serde_json::from_str(&reply.json).unwrap();
    assert_eq!(
        value,
        serde_json::json!([
            {"logical-id": 1, "online": false, "can-offline": true},
            {"logical-id": 0, "online": true, "can-offline": false},
            {"logical-id": 2, "online": true, "can-offline": true},
        ])
    );
    assert_eq!(reply.staged_member, None);
}

#[test]
fn errors() {
    let mut host = Fake(Err(
        "failed to list entries: /sys/devices/system/cpu: EACCES".into(),
    ));
    assert_eq!(
        run(&mut host, "guest-get-vcpus", "{}"),
        Err("failed to list entries: /sys/devices/system/cpu: EACCES".to_owned())
    );
    assert_eq!(
        run(&mut host, "guest-get-vcpus", r#"{"foo":1}"#),
        Err("Parameter 'foo' is unexpected".to_owned())
    );
    assert_eq!(
        run(&mut host, "guest-set-vcpus", "{}"),
        Err("component 'vcpus' does not implement guest-set-vcpus".to_owned())
    );
}
