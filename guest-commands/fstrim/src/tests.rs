//! The command logic against a fake `mounts`/`trim` host.

use serde_json::{Value, json};

use crate::{TrimError, TrimHost, Trimmed, run};

const MOUNTINFO: &str = "\
22 1 254:1 / / rw - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw - proc proc rw
24 22 254:2 / /data rw - ext4 /dev/vda2 rw
25 22 254:2 / /srv/bind rw - ext4 /dev/vda2 rw
26 22 254:3 / /old rw - vfat /dev/vda3 rw
";

#[derive(Default)]
struct Fake {
    asked: Vec<(String, u64)>,
}

impl TrimHost for Fake {
    fn mountinfo(&mut self) -> Result<String, String> {
        Ok(MOUNTINFO.into())
    }

    fn trim(&mut self, mountpoint: &str, minimum: u64) -> Result<Trimmed, TrimError> {
        self.asked.push((mountpoint.to_string(), minimum));
        match mountpoint {
            "/old" => Err(TrimError::Unsupported),
            "/" => Err(TrimError::Trim("Input/output error".into())),
            _ => Ok(Trimmed {
                bytes: 4096,
                minimum,
            }),
        }
    }
}

fn fstrim(host: &mut Fake, arguments: &str) -> Result<Value, String> {
    let reply = run(host, "guest-fstrim", arguments)?;
    Ok(serde_json::from_str(&reply.json).unwrap())
}

#[test]
fn every_device_once_in_reverse_order_failures_per_path() {
    let mut host = Fake::default();
    assert_eq!(
        fstrim(&mut host, r#"{"minimum":512}"#),
        Ok(json!({"paths": [
            {"path": "/old", "error": "trim not supported"},
            {"path": "/data", "trimmed": 4096, "minimum": 512},
            {"path": "/", "error": "failed to trim: Input/output error"},
        ]}))
    );
    assert_eq!(
        host.asked,
        [
            ("/old".into(), 512),
            ("/data".into(), 512),
            ("/".into(), 512)
        ]
    );
}

#[test]
fn minimum_defaults_to_zero_and_must_be_an_integer() {
    let mut host = Fake::default();
    fstrim(&mut host, "{}").unwrap();
    assert!(host.asked.iter().all(|(_, minimum)| *minimum == 0));
    assert_eq!(
        fstrim(&mut host, r#"{"minimum":"big"}"#),
        Err("Invalid parameter type for 'minimum', expected: integer".into())
    );
}
