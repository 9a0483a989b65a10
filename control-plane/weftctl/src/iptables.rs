//! `weftctl iptables`: the sidecar's init step, Istio's `istio-iptables`. Installs (or with
//! `--clean` removes) the `nat` rules that send a pod's TCP traffic through weft-proxy:
//! outbound to `--proxy-port` (15001), inbound to `--inbound-capture-port` (15006), with the
//! proxy's own uid/gid (1337) and its passthrough source `127.0.0.6` let through.
//!
//! It works on the current network namespace (run it inside the pod's, e.g. with
//! `ip netns exec`). Each address family is changed in one `iptables-restore` transaction, and
//! when the IPv6 one fails after the IPv4 one succeeded the IPv4 rules are removed again, so
//! a failure never leaves rules half installed.

mod rules;

use anyhow::{bail, Context as _};
use rules::{Family, Interception, Selection};
use std::io::Write as _;
use std::process::{Command, Stdio};

#[derive(clap::Args, Debug)]
pub struct IptablesArgs {
    /// Port that outbound TCP is redirected to (the proxy's virtualOutbound listener).
    #[arg(short = 'p', long, default_value_t = 15001, value_parser = clap::value_parser!(u16).range(1..))]
    proxy_port: u16,
    /// Port that inbound TCP is redirected to (the proxy's virtualInbound listener).
    #[arg(short = 'z', long, default_value_t = 15006, value_parser = clap::value_parser!(u16).range(1..))]
    inbound_capture_port: u16,
    /// The proxy's uid: its own connections are never redirected.
    #[arg(short = 'u', long, default_value_t = 1337)]
    proxy_uid: u32,
    /// The proxy's gid (default: the uid).
    #[arg(short = 'g', long)]
    proxy_gid: Option<u32>,
    /// Inbound ports to capture, comma-separated; `*` for all, empty for none
    /// (`traffic.sidecar.istio.io/includeInboundPorts`).
    #[arg(short = 'b', long, default_value = "*")]
    include_inbound_ports: String,
    /// Inbound ports never captured when all are (`traffic.sidecar.istio.io/excludeInboundPorts`);
    /// the default is what Istio's injector passes: the proxy's own status and stats ports.
    #[arg(short = 'd', long, default_value = "15090,15021,15020")]
    exclude_inbound_ports: String,
    /// Outbound destinations to capture; `*` for all
    /// (`traffic.sidecar.istio.io/includeOutboundIPRanges`).
    #[arg(short = 'i', long, default_value = "*")]
    include_outbound_ip_ranges: String,
    /// Outbound destinations never captured (`traffic.sidecar.istio.io/excludeOutboundIPRanges`).
    #[arg(short = 'x', long, default_value = "")]
    exclude_outbound_ip_ranges: String,
    /// Outbound ports always captured, whatever the address ranges say
    /// (`traffic.sidecar.istio.io/includeOutboundPorts`).
    #[arg(short = 'q', long, default_value = "")]
    include_outbound_ports: String,
    /// Outbound ports never captured (`traffic.sidecar.istio.io/excludeOutboundPorts`).
    #[arg(short = 'o', long, default_value = "")]
    exclude_outbound_ports: String,
    /// Also install the rules for IPv6 (ip6tables).
    #[arg(long)]
    ipv6: bool,
    /// Print the iptables-restore input instead of applying it.
    #[arg(long)]
    dry_run: bool,
    /// Remove the rules this command installs (and nothing else).
    #[arg(long)]
    clean: bool,
}

impl IptablesArgs {
    fn interception(&self) -> anyhow::Result<Interception> {
        let ports_list = |flag, s: &str| -> anyhow::Result<Vec<u16>> {
            match rules::parse_ports(flag, s)? {
                Selection::Only(v) => Ok(v),
                Selection::All => bail!("{flag}: `*` is not allowed here"),
            }
        };
        let exclude_outbound_ip_ranges = match rules::parse_cidrs(
            "--exclude-outbound-ip-ranges",
            &self.exclude_outbound_ip_ranges,
        )? {
            Selection::Only(v) => v,
            Selection::All => bail!("--exclude-outbound-ip-ranges: `*` is not allowed here"),
        };
        Ok(Interception {
            proxy_port: self.proxy_port,
            inbound_capture_port: self.inbound_capture_port,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid.unwrap_or(self.proxy_uid),
            include_inbound_ports: rules::parse_ports(
                "--include-inbound-ports",
                &self.include_inbound_ports,
            )?,
            exclude_inbound_ports: ports_list(
                "--exclude-inbound-ports",
                &self.exclude_inbound_ports,
            )?,
            include_outbound_ip_ranges: rules::parse_cidrs(
                "--include-outbound-ip-ranges",
                &self.include_outbound_ip_ranges,
            )?,
            exclude_outbound_ip_ranges,
            include_outbound_ports: ports_list(
                "--include-outbound-ports",
                &self.include_outbound_ports,
            )?,
            exclude_outbound_ports: ports_list(
                "--exclude-outbound-ports",
                &self.exclude_outbound_ports,
            )?,
        })
    }

    fn families(&self) -> Vec<Family> {
        if self.ipv6 {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }
}

pub fn run(args: &IptablesArgs) -> anyhow::Result<()> {
    // Every flag is checked before anything is read or changed.
    let interception = args.interception()?;
    let families = args.families();
    if args.dry_run {
        for family in families {
            // A dry run shows the full rule set, as on a namespace without any of it.
            let input = if args.clean {
                rules::clean(&all_installed(&interception, family))
            } else {
                Some(interception.install(family, ""))
            };
            println!("# {}-restore --noflush", family.tool());
            print!("{}", input.unwrap_or_default());
        }
        return Ok(());
    }
    if args.clean {
        for family in families {
            match rules::clean(&save(family)?) {
                Some(input) => restore(family, &input)?,
                None => println!("{}: no Weft rules to remove", family.tool()),
            }
        }
        return Ok(());
    }
    let mut done: Vec<Family> = Vec::new();
    for family in families {
        let result =
            save(family).and_then(|saved| restore(family, &interception.install(family, &saved)));
        if let Err(e) = result {
            // Undo the families already installed: all of it or none of it.
            for installed in done {
                if let Some(input) = save(installed).ok().and_then(|s| rules::clean(&s)) {
                    let _ = restore(installed, &input);
                }
            }
            return Err(e);
        }
        println!("{}: interception installed", family.tool());
        done.push(family);
    }
    Ok(())
}

/// The table as it reads once the rules are installed: what `--clean --dry-run` removes.
fn all_installed(interception: &Interception, family: Family) -> String {
    let mut saved: String = rules::CHAINS
        .iter()
        .map(|c| format!(":{c} - [0:0]\n"))
        .collect();
    saved.push_str(&interception.install(family, ""));
    saved
}

/// The current `nat` table, as `iptables-save` prints it.
fn save(family: Family) -> anyhow::Result<String> {
    let tool = format!("{}-save", family.tool());
    let out = Command::new(&tool)
        .args(["-t", "nat"])
        .output()
        .with_context(|| format!("cannot run {tool} (install the iptables package)"))?;
    if !out.status.success() {
        bail!(
            "{tool} -t nat failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{tool} printed something not UTF-8"))
}

/// Applies one transaction: all of it or, on any error, none of it.
fn restore(family: Family, input: &str) -> anyhow::Result<()> {
    let tool = format!("{}-restore", family.tool());
    let mut child = Command::new(&tool)
        // Wait (bounded) for the xtables lock rather than fail when another tool holds it.
        .args(["--noflush", "--wait", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {tool} (install the iptables package)"))?;
    child
        .stdin
        .take()
        .context("no stdin for iptables-restore")?
        .write_all(input.as_bytes())
        .with_context(|| format!("cannot write to {tool}"))?;
    let out = child
        .wait_with_output()
        .with_context(|| format!("{tool} did not finish"))?;
    if !out.status.success() {
        bail!(
            "{tool} refused the rules, nothing was changed: {}\n{input}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
