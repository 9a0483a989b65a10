//! `weftctl proxy-config listeners|routes|clusters|endpoints|all TARGET [-o json]`: what one
//! proxy is running, read from its admin `/config_dump` (Envoy's or weft-proxy's), as
//! `istioctl proxy-config` shows it. TARGET is the admin address (`127.0.0.1:15100`) or a
//! workload that weftd knows (`reviews-v1` or `reviews-v1.default`), whose admin address
//! weftd learned from the proxy's node metadata.

mod dump;
mod fields;
mod listeners;

use crate::admin_http;
use crate::proxy_status::{self, WEFTD_DEFAULT};
use crate::table;
use anyhow::Context as _;
use dump::ProxyConfig;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
    All,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ProxyConfigArgs {
    /// What to show.
    #[arg(value_enum)]
    section: Section,
    /// The proxy: its admin address (host:port), or a workload name weftd knows
    /// (`NAME` or `NAME.NAMESPACE`).
    target: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// weftd's HTTP address, to find a workload's admin address.
    #[arg(long, default_value = WEFTD_DEFAULT)]
    weftd: String,
}

pub async fn run(args: &ProxyConfigArgs) -> anyhow::Result<()> {
    let admin = resolve(&args.target, &args.weftd).await?;
    // `include_eds` makes Envoy add the endpoints; weft-proxy's dump always has them.
    let body = admin_http::get(&admin, "/config_dump?include_eds", TIMEOUT).await?;
    let dump: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("{admin}/config_dump is not JSON"))?;
    let config = dump::read(&dump).with_context(|| format!("{admin}/config_dump"))?;
    print!("{}", render(&config, args.section, args.output)?);
    Ok(())
}

/// An admin address as given, or the one weftd reports for a workload.
async fn resolve(target: &str, weftd: &str) -> anyhow::Result<String> {
    if target.parse::<std::net::SocketAddr>().is_ok() || target.contains(':') {
        return Ok(target.to_string());
    }
    let proxies = proxy_status::fetch(weftd).await?;
    let found: Vec<_> = proxies
        .iter()
        .filter(|p| p.workload == target || format!("{}.{}", p.workload, p.namespace) == target)
        .collect();
    match found.as_slice() {
        [one] => one.admin_addr.clone().with_context(|| {
            format!("{target} is connected to weftd but did not send its admin address")
        }),
        [] => anyhow::bail!(
            "no proxy named {target} is connected to weftd at {weftd} (see `weftctl proxy-status`)"
        ),
        _ => anyhow::bail!("{target} names several proxies; add the namespace: NAME.NAMESPACE"),
    }
}

/// The first two domains and how many more, as istioctl keeps the table readable.
fn domains_text(domains: &[String]) -> String {
    match domains {
        [] => "-".into(),
        [a] => a.clone(),
        [a, b] => format!("{a}, {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} + {} more...", rest.len()),
    }
}

fn render(config: &ProxyConfig, section: Section, output: Output) -> anyhow::Result<String> {
    if output == Output::Json {
        let value = match section {
            Section::Listeners => serde_json::to_value(&config.listeners)?,
            Section::Routes => serde_json::to_value(&config.routes)?,
            Section::Clusters => serde_json::to_value(&config.clusters)?,
            Section::Endpoints => serde_json::to_value(&config.endpoints)?,
            Section::All => serde_json::to_value(config)?,
        };
        return Ok(serde_json::to_string_pretty(&value)? + "\n");
    }
    let mut out = String::new();
    let all = section == Section::All;
    if all || section == Section::Listeners {
        out.push_str(&listeners::table(&config.listeners));
    }
    if all || section == Section::Routes {
        if all {
            out.push('\n');
        }
        let rows: Vec<Vec<String>> = config
            .routes
            .iter()
            .map(|r| {
                let path = if r.conditions > 0 {
                    format!("{} (+{} conditions)", r.path, r.conditions)
                } else {
                    r.path.clone()
                };
                vec![
                    r.route_config.clone(),
                    r.virtual_host.clone(),
                    domains_text(&r.domains),
                    path,
                    r.destination.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "DESTINATION"],
            &rows,
        ));
    }
    if all || section == Section::Clusters {
        if all {
            out.push('\n');
        }
        let rows: Vec<Vec<String>> = config
            .clusters
            .iter()
            .map(|c| {
                // Istio's names: direction|port|subset|fqdn.
                let parts: Vec<&str> = c.name.split('|').collect();
                let (fqdn, port, subset, direction) = match parts.as_slice() {
                    [dir, port, subset, fqdn] => (*fqdn, *port, *subset, *dir),
                    _ => (c.name.as_str(), "-", "-", "-"),
                };
                let or_dash = |s: &str| {
                    if s.is_empty() {
                        "-".to_string()
                    } else {
                        s.to_string()
                    }
                };
                vec![
                    fqdn.to_string(),
                    or_dash(port),
                    or_dash(subset),
                    or_dash(direction),
                    c.discovery.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"],
            &rows,
        ));
    }
    if all || section == Section::Endpoints {
        if all {
            out.push('\n');
        }
        let rows: Vec<Vec<String>> = config
            .endpoints
            .iter()
            .map(|e| {
                vec![
                    e.address.clone(),
                    if e.healthy { "HEALTHY" } else { "UNHEALTHY" }.into(),
                    match e.outlier_ejected {
                        Some(true) => "FAILED",
                        Some(false) => "OK",
                        None => "-",
                    }
                    .into(),
                    e.cluster.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"],
            &rows,
        ));
    }
    Ok(out)
}
