//! guest-network-get-interfaces: the interfaces listed by the host behind
//! [`NetHost`], shaped as qemu-ga's GuestNetworkInterface list.

use std::net::{Ipv4Addr, Ipv6Addr};

use qapi_args::Args;
use serde_json::{Map, Value, json};

use crate::Reply;

/// `sandga:agent/net.ip-address`, mirrored so the logic builds natively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpAddress {
    pub ipv6: bool,
    pub octets: Vec<u8>,
    pub prefix: u8,
}

/// `sandga:agent/net.statistics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statistics {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_dropped: u64,
}

/// `sandga:agent/net.net-interface`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInterface {
    pub name: String,
    pub hardware_address: Option<Vec<u8>>,
    pub addresses: Vec<IpAddress>,
    pub statistics: Option<Statistics>,
}

/// The `net` interface: the wit-bindgen import in the component, a fake in
/// tests.
pub trait NetHost {
    fn interfaces(&mut self) -> Result<Vec<NetInterface>, String>;
}

/// `{}` → `[{name, hardware-address?, ip-addresses?, statistics?}]`.
pub fn get_interfaces(host: &mut impl NetHost, args: Args) -> Result<Reply, String> {
    args.finish()?;
    let interfaces: Vec<Value> = host
        .interfaces()?
        .into_iter()
        .map(|interface| interface_json(&interface))
        .collect::<Result<_, _>>()?;
    Ok(Reply::json(Value::from(interfaces).to_string()))
}

fn interface_json(interface: &NetInterface) -> Result<Value, String> {
    let mut object = Map::new();
    object.insert("name".into(), json!(interface.name));
    if let Some(mac) = &interface.hardware_address {
        // qemu-ga prints the first six bytes (ETHER_ADDR_LEN), lower case.
        let text: Vec<String> = mac.iter().take(6).map(|b| format!("{b:02x}")).collect();
        object.insert("hardware-address".into(), json!(text.join(":")));
    }
    // Like qemu-ga: addresses and statistics only for an interface that has
    // at least one IP address.
    if !interface.addresses.is_empty() {
        let addresses: Vec<Value> = interface
            .addresses
            .iter()
            .map(address_json)
            .collect::<Result<_, _>>()?;
        object.insert("ip-addresses".into(), Value::from(addresses));
        if let Some(s) = interface.statistics {
            object.insert(
                "statistics".into(),
                json!({
                    "rx-bytes": s.rx_bytes,
                    "rx-packets": s.rx_packets,
                    "rx-errs": s.rx_errs,
                    "rx-dropped": s.rx_dropped,
                    "tx-bytes": s.tx_bytes,
                    "tx-packets": s.tx_packets,
                    "tx-errs": s.tx_errs,
                    "tx-dropped": s.tx_dropped,
                }),
            );
        }
    }
    Ok(Value::Object(object))
}

/// The host is untrusted here too: an address of the wrong length is an
/// error, not a guess.
fn address_json(address: &IpAddress) -> Result<Value, String> {
    let (kind, text) = if address.ipv6 {
        let octets: [u8; 16] = address
            .octets
            .as_slice()
            .try_into()
            .map_err(|_| "inet_ntop failed: bad IPv6 address length".to_owned())?;
        ("ipv6", Ipv6Addr::from(octets).to_string())
    } else {
        let octets: [u8; 4] = address
            .octets
            .as_slice()
            .try_into()
            .map_err(|_| "inet_ntop failed: bad IPv4 address length".to_owned())?;
        ("ipv4", Ipv4Addr::from(octets).to_string())
    };
    Ok(json!({
        "ip-address-type": kind,
        "ip-address": text,
        "prefix": address.prefix,
    }))
}
