//! `sandga:agent/net`: the guest's network interfaces, from getifaddrs(3)
//! and /proc/net/dev.

use std::collections::HashMap;

use nix::ifaddrs::getifaddrs;
use nix::sys::socket::SockaddrStorage;

use super::bindings::sandga::agent::net::{
    self, AddressFamily, IpAddress, NetInterface, Statistics,
};
use super::{HostState, os_text};

const PROC_NET_DEV: &str = "/proc/net/dev";

/// Interfaces in first-seen getifaddrs order (glibc lists every link first),
/// with their addresses, and statistics for those that have an address.
pub fn interfaces() -> Result<Vec<NetInterface>, String> {
    let entries = getifaddrs().map_err(|e| format!("getifaddrs failed: {}", e.desc()))?;
    let mut found: Vec<NetInterface> = Vec::new();
    for entry in entries {
        let at = match found.iter().position(|i| i.name == entry.interface_name) {
            Some(at) => at,
            None => {
                found.push(NetInterface {
                    name: entry.interface_name.clone(),
                    hardware_address: None,
                    addresses: Vec::new(),
                    statistics: None,
                });
                found.len() - 1
            }
        };
        let Some(interface) = found.get_mut(at) else {
            continue;
        };
        let Some(address) = entry.address else {
            continue;
        };
        if let Some(link) = address.as_link_addr() {
            if interface.hardware_address.is_none() {
                interface.hardware_address = link.addr().map(|mac| mac.to_vec());
            }
        } else if let Some(ip) = ip_address(&address, entry.netmask.as_ref()) {
            interface.addresses.push(ip);
        }
    }
    if found.iter().any(|i| !i.addresses.is_empty()) {
        let mut statistics = read_statistics()?;
        for interface in found.iter_mut().filter(|i| !i.addresses.is_empty()) {
            interface.statistics = statistics.remove(&interface.name);
        }
    }
    Ok(found)
}

fn ip_address(address: &SockaddrStorage, netmask: Option<&SockaddrStorage>) -> Option<IpAddress> {
    if let Some(v4) = address.as_sockaddr_in() {
        let prefix = netmask
            .and_then(SockaddrStorage::as_sockaddr_in)
            .map_or(0, |mask| mask.ip().to_bits().count_ones());
        return Some(IpAddress {
            family: AddressFamily::Ipv4,
            octets: v4.ip().octets().to_vec(),
            prefix: u8::try_from(prefix).unwrap_or(u8::MAX),
        });
    }
    let v6 = address.as_sockaddr_in6()?;
    let prefix = netmask
        .and_then(SockaddrStorage::as_sockaddr_in6)
        .map_or(0, |mask| mask.ip().to_bits().count_ones());
    Some(IpAddress {
        family: AddressFamily::Ipv6,
        octets: v6.ip().octets().to_vec(),
        prefix: u8::try_from(prefix).unwrap_or(u8::MAX),
    })
}

/// Per interface: rx bytes, packets, errs, drop (fields 1–4) and tx bytes,
/// packets, errs, drop (fields 9–12) of lines with all 16 counters.
fn read_statistics() -> Result<HashMap<String, Statistics>, String> {
    let text = std::fs::read_to_string(PROC_NET_DEV)
        .map_err(|e| format!("failed to open {PROC_NET_DEV}: {}", os_text(&e)))?;
    Ok(parse_statistics(&text))
}

fn parse_statistics(text: &str) -> HashMap<String, Statistics> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.trim_start().split_once(':')?;
            let fields: Vec<u64> = counters
                .split_whitespace()
                .map(|field| field.parse().ok())
                .collect::<Option<_>>()?;
            let &[
                rx_bytes,
                rx_packets,
                rx_errs,
                rx_dropped,
                _,
                _,
                _,
                _,
                tx_bytes,
                tx_packets,
                tx_errs,
                tx_dropped,
                _,
                _,
                _,
                _,
            ] = fields.as_slice()
            else {
                return None;
            };
            Some((
                name.to_string(),
                Statistics {
                    rx_bytes,
                    rx_packets,
                    rx_errs,
                    rx_dropped,
                    tx_bytes,
                    tx_packets,
                    tx_errs,
                    tx_dropped,
                },
            ))
        })
        .collect()
}

impl net::Host for HostState {
    fn interfaces(&mut self) -> Result<Vec<NetInterface>, String> {
        interfaces()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
 lo: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n  eth0: 1 2 3\n";
        let stats = parse_statistics(text);
        assert_eq!(stats.len(), 1);
        let lo = &stats["lo"];
        assert_eq!(
            (lo.rx_bytes, lo.rx_packets, lo.rx_errs, lo.rx_dropped),
            (1000, 10, 1, 2)
        );
        assert_eq!(
            (lo.tx_bytes, lo.tx_packets, lo.tx_errs, lo.tx_dropped),
            (2000, 20, 3, 4)
        );
    }

    #[test]
    fn lists_loopback_with_its_address() {
        let found = interfaces().unwrap();
        let lo = found.iter().find(|i| i.name == "lo").expect("lo listed");
        assert_eq!(lo.hardware_address.as_deref(), Some(&[0u8; 6][..]));
        assert!(
            lo.addresses
                .iter()
                .any(|a| a.octets == [127, 0, 0, 1] && a.prefix == 8),
            "{:?}",
            lo.addresses
        );
        assert!(lo.statistics.is_some());
    }
}
