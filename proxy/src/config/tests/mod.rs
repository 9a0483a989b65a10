//! Each `compile_*` function: the happy path on realistic input, and rejection of bad input with
//! the right field path. Inputs are proto struct literals, as a control plane would send them.

mod cluster;
mod downstream;
mod endpoint;
mod http_connection;
mod listener;
mod resilience;
mod route;
mod route_policy;
mod upstream_http;

use prost::Message;
use xds_protos::pb::envoy::config::core::v3::{
    address, socket_address::PortSpecifier, Address, SocketAddress,
};
use xds_protos::pb::google::protobuf::Any;

fn any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.into(),
        value: m.encode_to_vec(),
    }
}

fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}
