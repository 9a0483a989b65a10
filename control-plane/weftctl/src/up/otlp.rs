//! `weftctl up --otlp ADDR`: every sidecar's spans go to an OpenTelemetry collector (a Jaeger
//! all-in-one, say), through a MeshConfig that names it as the default tracing provider with
//! 100 % sampling, handed to weftd as `--mesh-config`.

use std::path::{Path, PathBuf};

/// The provider's name in the written MeshConfig.
pub const PROVIDER: &str = "otlp";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OtlpError {
    #[error("--otlp {0:?}: expected HOST:PORT of an OTLP gRPC receiver (e.g. 127.0.0.1:4317)")]
    NotHostPort(String),
}

/// `HOST:PORT`, `[v6]:PORT`, optionally with `http://`.
pub fn parse_addr(addr: &str) -> Result<(String, u16), OtlpError> {
    let bad = || OtlpError::NotHostPort(addr.to_string());
    let rest = addr
        .strip_prefix("http://")
        .unwrap_or(addr)
        .trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(['/', ' ']) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Istio's MeshConfig naming the collector at `host:port` as the default tracing provider.
pub fn mesh_config(host: &str, port: u16) -> String {
    format!(
        "# Written by weftctl up --otlp: every request is traced and exported over OTLP/gRPC.\n\
         extensionProviders:\n\
         - name: {PROVIDER}\n  opentelemetry:\n    service: \"{host}\"\n    port: {port}\n\
         defaultProviders:\n  tracing: [{PROVIDER}]\n\
         defaultConfig:\n  tracing:\n    sampling: 100\n"
    )
}

/// Writes the MeshConfig into `dir` and returns its path.
pub fn write_mesh_config(dir: &Path, addr: &str) -> anyhow::Result<PathBuf> {
    let (host, port) = parse_addr(addr)?;
    let path = dir.join("mesh-config.yaml");
    std::fs::write(&path, mesh_config(&host, port))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_control_plane::model::parse_mesh_config;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(parse_addr("127.0.0.1:4317"), Ok(("127.0.0.1".into(), 4317)));
        assert_eq!(
            parse_addr("http://localhost:4317/"),
            Ok(("localhost".into(), 4317))
        );
        assert_eq!(parse_addr("[::1]:4317"), Ok(("::1".into(), 4317)));
        for bad in ["127.0.0.1", "x:0", ":4317", "h:port"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_mesh_config_is_one_weftd_reads_with_full_sampling() {
        let m = parse_mesh_config(Path::new("m.yaml"), &mesh_config("127.0.0.1", 4317))
            .expect("weftd reads it");
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        assert_eq!(m.config.default_tracing_provider.as_deref(), Some(PROVIDER));
        assert_eq!(m.config.default_sampling, 100.0);
        let p = &m.config.tracing_providers[PROVIDER];
        assert_eq!((p.host(), p.port), ("127.0.0.1", 4317));
    }
}
