//! `weftctl proxy-status`: every proxy connected to weftd and, per xDS type, whether it runs
//! what weftd last sent it, as `istioctl proxy-status` shows it: SYNCED (the last version sent
//! was ACKed), STALE (sent and not ACKed: still in flight, or NACKed — the NACK is printed
//! below the table), NOT SENT (nothing of that type sent yet).

use crate::admin_http;
use crate::table;
use anyhow::Context as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// weftd's HTTP address when started by `weftctl up` with its defaults.
pub const WEFTD_DEFAULT: &str = "127.0.0.1:15014";

const TIMEOUT: Duration = Duration::from_secs(10);

/// The xDS types in the order istioctl prints them, with their column names.
const TYPES: [(&str, &str); 4] = [
    ("CDS", "type.googleapis.com/envoy.config.cluster.v3.Cluster"),
    (
        "LDS",
        "type.googleapis.com/envoy.config.listener.v3.Listener",
    ),
    (
        "EDS",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    ),
    (
        "RDS",
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    ),
];

/// One proxy as weftd's `/debug/syncz` reports it.
#[derive(Debug, Deserialize)]
pub struct ConnectedProxy {
    pub node_id: String,
    pub namespace: String,
    pub workload: String,
    #[serde(default)]
    pub admin_addr: Option<String>,
    pub protocol: String,
    #[serde(default)]
    pub types: BTreeMap<String, TypeState>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TypeState {
    pub last_sent_version: Option<String>,
    pub last_acked_version: Option<String>,
    pub last_nack: Option<NackState>,
}

#[derive(Debug, Deserialize)]
pub struct NackState {
    pub version: String,
    pub error_detail: String,
}

#[derive(clap::Args, Debug)]
pub struct ProxyStatusArgs {
    /// weftd's HTTP address.
    #[arg(long, default_value = WEFTD_DEFAULT)]
    weftd: String,
    /// Print weftd's record as JSON instead of the table.
    #[arg(short = 'o', long, value_parser = ["table", "json"], default_value = "table")]
    output: String,
}

pub async fn fetch(weftd: &str) -> anyhow::Result<Vec<ConnectedProxy>> {
    let body = admin_http::get(weftd, "/debug/syncz", TIMEOUT)
        .await
        .with_context(|| format!("cannot read the proxies' status from weftd at {weftd}"))?;
    serde_json::from_slice(&body)
        .with_context(|| format!("weftd at {weftd}: /debug/syncz is not what this weftctl expects"))
}

pub async fn run(args: &ProxyStatusArgs) -> anyhow::Result<()> {
    if args.output == "json" {
        let body = admin_http::get(&args.weftd, "/debug/syncz", TIMEOUT).await?;
        println!("{}", String::from_utf8_lossy(&body).trim_end());
        return Ok(());
    }
    let mut proxies = fetch(&args.weftd).await?;
    proxies.sort_by(|a, b| {
        (&a.workload, &a.namespace, &a.node_id).cmp(&(&b.workload, &b.namespace, &b.node_id))
    });
    print!("{}", render(&proxies, &args.weftd));
    Ok(())
}

fn state(t: Option<&TypeState>) -> &'static str {
    match t {
        None
        | Some(TypeState {
            last_sent_version: None,
            ..
        }) => "NOT SENT",
        Some(t) if t.last_acked_version == t.last_sent_version => "SYNCED",
        Some(_) => "STALE",
    }
}

fn render(proxies: &[ConnectedProxy], weftd: &str) -> String {
    let mut headers = vec!["NAME"];
    headers.extend(TYPES.iter().map(|(col, _)| *col));
    headers.extend(["XDS", "WEFTD", "ADMIN"]);
    let rows: Vec<Vec<String>> = proxies
        .iter()
        .map(|p| {
            let mut row = vec![format!("{}.{}", p.workload, p.namespace)];
            row.extend(
                TYPES
                    .iter()
                    .map(|(_, url)| state(p.types.get(*url)).to_string()),
            );
            row.push(p.protocol.clone());
            row.push(weftd.to_string());
            row.push(p.admin_addr.clone().unwrap_or_else(|| "-".into()));
            row
        })
        .collect();
    let mut out = table::render(&headers, &rows);
    for p in proxies {
        for (col, url) in TYPES {
            if let Some(nack) = p.types.get(url).and_then(|t| t.last_nack.as_ref()) {
                out.push_str(&format!(
                    "{}.{} {col} NACK of version {}: {}\n",
                    p.workload, p.namespace, nack.version, nack.error_detail
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_reads_synced_stale_or_not_sent() {
        let syncz = serde_json::json!([{
            "node_id": "sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local",
            "namespace": "default",
            "workload": "reviews-v1",
            "admin_addr": "127.0.0.1:15100",
            "protocol": "sotw",
            "connected_at": "x",
            "types": {
                TYPES[0].1: {"last_sent_version": "a", "last_acked_version": "a", "resources_sent": 3},
                TYPES[1].1: {"last_sent_version": "b", "last_acked_version": "a",
                    "last_nack": {"version": "b", "nonce": "2", "error_detail": "Listener x: bad", "at": "t"},
                    "resources_sent": 1}
            }
        }]);
        let proxies: Vec<ConnectedProxy> = serde_json::from_value(syncz).unwrap();
        let out = render(&proxies, "127.0.0.1:15014");
        let mut lines = out.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "CDS", "LDS", "EDS", "RDS", "XDS", "WEFTD", "ADMIN"]
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("reviews-v1.default  SYNCED  STALE  NOT SENT  NOT SENT  sotw"),
            "{row}"
        );
        assert_eq!(
            lines.next().unwrap(),
            "reviews-v1.default LDS NACK of version b: Listener x: bad"
        );
    }
}
