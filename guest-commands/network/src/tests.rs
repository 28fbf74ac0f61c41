//! The command logic against a fake `net` host.

use serde_json::{Value, json};

use crate::{IpAddress, NetHost, NetInterface, Statistics, run};

struct Fake(Result<Vec<NetInterface>, String>);

impl NetHost for Fake {
    fn interfaces(&mut self) -> Result<Vec<NetInterface>, String> {
        self.0.clone()
    }
}

fn returned(host: &mut Fake) -> Value {
    let reply = run(host, "guest-network-get-interfaces", "{}").unwrap();
    assert_eq!(reply.staged_member, None);
    serde_json::from_str(&reply.json).unwrap()
}

#[test]
fn shapes_interfaces_like_qemu_ga() {
    let stats = Statistics {
        rx_bytes: 1,
        rx_packets: 2,
        rx_errs: 3,
        rx_dropped: 4,
        tx_bytes: 5,
        tx_packets: 6,
        tx_errs: 7,
        tx_dropped: 8,
    };
    let mut fe80 = vec![0xfe, 0x80];
    fe80.extend([0; 13]);
    fe80.push(1);
    let mut host = Fake(Ok(vec![
        NetInterface {
            name: "lo".into(),
            hardware_address: Some(vec![0; 6]),
            addresses: vec![
                IpAddress {
                    ipv6: false,
                    octets: vec![127, 0, 0, 1],
                    prefix: 8,
                },
                IpAddress {
                    ipv6: true,
                    octets: fe80,
                    prefix: 64,
                },
            ],
            statistics: Some(stats),
        },
        // No address: name and hardware address only, even with statistics.
        NetInterface {
            name: "ifb0".into(),
            hardware_address: Some(vec![0xAA, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11]),
            addresses: vec![],
            statistics: Some(stats),
        },
        NetInterface {
            name: "tun\"0".into(),
            hardware_address: None,
            addresses: vec![],
            statistics: None,
        },
    ]));
    assert_eq!(
        returned(&mut host),
        json!([
            {
                "name": "lo",
                "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [
                    {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
                    {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64},
                ],
                "statistics": {
                    "rx-bytes": 1, "rx-packets": 2, "rx-errs": 3, "rx-dropped": 4,
                    "tx-bytes": 5, "tx-packets": 6, "tx-errs": 7, "tx-dropped": 8,
                },
            },
            {"name": "ifb0", "hardware-address": "aa:bb:cc:dd:ee:ff"},
            {"name": "tun\"0"},
        ])
    );
}

#[test]
fn errors() {
    let mut host = Fake(Ok(vec![NetInterface {
        name: "x".into(),
        hardware_address: None,
        addresses: vec![IpAddress {
            ipv6: false,
            octets: vec![1, 2, 3],
            prefix: 8,
        }],
        statistics: None,
    }]));
    assert_eq!(
        run(&mut host, "guest-network-get-interfaces", "{}"),
        Err("inet_ntop failed: bad IPv4 address length".to_owned())
    );
    let mut host = Fake(Err("getifaddrs failed: EACCES".into()));
    assert_eq!(
        run(&mut host, "guest-network-get-interfaces", "{}"),
        Err("getifaddrs failed: EACCES".to_owned())
    );
    assert_eq!(
        run(&mut host, "guest-network-get-interfaces", r#"{"x":1}"#),
        Err("Parameter 'x' is unexpected".to_owned())
    );
}
