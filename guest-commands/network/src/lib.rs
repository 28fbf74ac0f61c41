//! sandga's command component for WIT world `network`:
//! guest-network-get-interfaces.
//!
//! The command logic ([`run`], `commands`) is plain Rust over [`NetHost`]
//! so `cargo test` runs it natively with a fake host; the wit-bindgen glue is
//! built for wasm32 only, because its export names do not link natively.

mod commands;

pub use commands::{IpAddress, NetHost, NetInterface, Statistics};
pub use qapi_args::Reply;

/// Runs command `name`; an error is the `desc` of qemu-ga's `GenericError`.
pub fn run<H: NetHost>(host: &mut H, name: &str, arguments: &str) -> Result<Reply, String> {
    qapi_args::dispatch(
        host,
        "network",
        &[("guest-network-get-interfaces", commands::get_interfaces)],
        name,
        arguments,
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "network", path: "../../wit" });

    use sandga::agent::net;

    /// The real host: the `net` import.
    struct WitHost;

    impl crate::NetHost for WitHost {
        fn interfaces(&mut self) -> Result<Vec<crate::NetInterface>, String> {
            Ok(net::interfaces()?
                .into_iter()
                .map(|interface| crate::NetInterface {
                    name: interface.name,
                    hardware_address: interface.hardware_address,
                    addresses: interface
                        .addresses
                        .into_iter()
                        .map(|address| crate::IpAddress {
                            ipv6: matches!(address.family, net::AddressFamily::Ipv6),
                            octets: address.octets,
                            prefix: address.prefix,
                        })
                        .collect(),
                    statistics: interface.statistics.map(|s| crate::Statistics {
                        rx_bytes: s.rx_bytes,
                        rx_packets: s.rx_packets,
                        rx_errs: s.rx_errs,
                        rx_dropped: s.rx_dropped,
                        tx_bytes: s.tx_bytes,
                        tx_packets: s.tx_packets,
                        tx_errs: s.tx_errs,
                        tx_dropped: s.tx_dropped,
                    }),
                })
                .collect())
        }
    }

    qapi_args::export_command!(WitHost, crate::run);
}

#[cfg(test)]
mod tests;
