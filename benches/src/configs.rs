//! The configuration files the benchmark writes: nginx (the upstream), HAProxy, and the Istio
//! YAML that weftd turns into xDS for weft-proxy and Envoy.

use std::fmt::Write as _;
use std::path::Path;

pub const SMALL_BODY: &str = "/b64";
pub const LARGE_BODY: &str = "/b16k";
/// The service the proxies route `Host: upstream:8080` to.
pub const UPSTREAM_HOST: &str = "upstream:8080";
/// The gRPC service: weftd speaks HTTP/2 to it (protocol GRPC).
pub const GRPC_HOST: &str = "grpc-upstream:9090";

/// nginx as the upstream: one worker process, no master, no access log, bodies served from
/// files. `h1_port` speaks HTTP/1.1, `h2_port` cleartext HTTP/2 (for the direct h2 runs).
pub fn nginx(dir: &Path, h1_port: u16, h2_port: u16) -> std::io::Result<String> {
    let root = dir.join("www");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("b64"), "x".repeat(64))?;
    std::fs::write(root.join("b16k"), "x".repeat(16 * 1024))?;
    let d = dir.display();
    Ok(format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 20000; multi_accept on; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {d}/tmp_body;
  proxy_temp_path {d}/tmp_proxy;
  fastcgi_temp_path {d}/tmp_fastcgi;
  uwsgi_temp_path {d}/tmp_uwsgi;
  scgi_temp_path {d}/tmp_scgi;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{h1_port} backlog=4096;
    listen 127.0.0.1:{h2_port} http2 backlog=4096;
    http2_max_concurrent_streams 256;
    root {root};
    # The routing-scale services' paths, so a probe can check the last route is loaded.
    location /svc- {{ return 200 svc; }}
  }}
}}
",
        root = root.display()
    ))
}

/// Routing scale for HAProxy: the same 10,000 (host, path-prefix) routes as the Istio config,
/// as a map file matched by longest prefix on `host + path` (HAProxy indexes `map_beg` in a
/// tree, which is how one writes a large HAProxy routing table).
pub struct HaproxyScale {
    pub map_file: std::path::PathBuf,
    pub services: usize,
}

/// HAProxy as a plain L7 reverse proxy: one thread, keep-alive on both sides, no logs.
/// `http_port` takes HTTP/1.1 and cleartext HTTP/2 (detected by its preface) towards nginx;
/// `grpc_port` is HTTP/2 on both sides towards the gRPC server.
pub fn haproxy(
    http_port: u16,
    grpc_port: u16,
    nginx_port: u16,
    grpc_upstream_port: u16,
    scale: Option<&HaproxyScale>,
) -> String {
    let mut out = format!(
        "global
  nbthread 1
  # 1,000 client connections need about 2,000 descriptors; more would ask for a higher
  # descriptor limit than CI machines allow.
  maxconn 5000
  tune.bufsize 32768

defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always
  maxconn 5000

frontend http_in
  bind 127.0.0.1:{http_port}
"
    );
    match scale {
        Some(s) => {
            let _ = writeln!(
                out,
                "  use_backend %[base,map_beg({},upstream)]",
                s.map_file.display()
            );
        }
        None => out.push_str("  default_backend upstream\n"),
    }
    let _ = write!(
        out,
        "
frontend grpc_in
  bind 127.0.0.1:{grpc_port} proto h2
  default_backend grpc_upstream

backend upstream
  server nginx 127.0.0.1:{nginx_port}

backend grpc_upstream
  server grpc 127.0.0.1:{grpc_upstream_port} proto h2
"
    );
    if let Some(s) = scale {
        for n in 0..s.services {
            let _ = write!(
                out,
                "\nbackend svc-{n}\n  server s 127.0.0.1:{nginx_port}\n"
            );
        }
    }
    out
}

/// The map file for [`HaproxyScale`]: `svc-N:8080/svc-N/rK  svc-N`, plus the benchmarked
/// upstream.
pub fn haproxy_scale_map(services: usize, routes_per_service: usize) -> String {
    let mut out = String::with_capacity(services * routes_per_service * 40);
    for n in 0..services {
        for k in 0..routes_per_service {
            let _ = writeln!(out, "svc-{n}:8080/svc-{n}/r{k} svc-{n}");
        }
    }
    let _ = writeln!(out, "{UPSTREAM_HOST}/ upstream");
    out
}

/// A ServiceEntry with one STATIC endpoint on 127.0.0.1.
pub fn service_entry(name: &str, port: u16, protocol: &str, endpoint_port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  ports: [{{number: {port}, name: {pname}, protocol: {protocol}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{{pname}: {endpoint_port}}}}}]
",
        pname = protocol.to_ascii_lowercase()
    )
}

/// The two benchmarked services: `upstream` (HTTP, nginx) and `grpc-upstream` (GRPC).
pub fn base_mesh(nginx_port: u16, grpc_port: u16) -> String {
    format!(
        "{}---\n{}",
        service_entry("upstream", 8080, "HTTP", nginx_port),
        service_entry("grpc-upstream", 9090, "GRPC", grpc_port)
    )
}

/// A VirtualService for `svc-N` with `routes` prefix-match routes (`/svc-N/r0` ...), each to
/// the service itself.
pub fn virtual_service(n: usize, routes: usize) -> String {
    let mut out = format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{n}, namespace: default}}
spec:
  hosts: [svc-{n}.default.svc.cluster.local]
  http:
"
    );
    for k in 0..routes {
        let _ = write!(
            out,
            "  - name: r{k}
    match: [{{uri: {{prefix: /svc-{n}/r{k}}}}}]
    route: [{{destination: {{host: svc-{n}.default.svc.cluster.local, port: {{number: 8080}}}}}}]
"
        );
    }
    out
}

/// `services` ServiceEntries `svc-N` (endpoints on `endpoint_port`) and VirtualServices for the
/// first `virtual_services` of them with `routes` routes each, as one multi-document file.
pub fn scale_mesh(
    services: usize,
    virtual_services: usize,
    routes: usize,
    endpoint_port: u16,
) -> String {
    let mut out = String::with_capacity(services * 400 + virtual_services * routes * 200);
    for n in 0..services {
        out.push_str(&service_entry(
            &format!("svc-{n}"),
            8080,
            "HTTP",
            endpoint_port,
        ));
        out.push_str("---\n");
        if n < virtual_services {
            out.push_str(&virtual_service(n, routes));
            out.push_str("---\n");
        }
    }
    out
}

/// `services` services the way Istio's scale tests load them, each a ServiceEntry with two
/// endpoints (labels `version: v1` and `v2`, both on 127.0.0.1:`endpoint_port`), a
/// DestinationRule with the subsets `v1` and `v2`, and a VirtualService sending a header-matched
/// request to `v2` and the rest 90/10 to `v1`/`v2`: 3 clusters, 3 endpoint sets and one virtual
/// host per service.
pub fn istio_services(services: usize, endpoint_port: u16) -> String {
    let mut out = String::with_capacity(services * 1400);
    for n in 0..services {
        let host = format!("svc-{n}.default.svc.cluster.local");
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{n}, namespace: default}}
spec:
  hosts: [{host}]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {endpoint_port}}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {endpoint_port}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{n}, namespace: default}}
spec:
  host: {host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{n}, namespace: default}}
spec:
  hosts: [{host}]
  http:
  - match: [{{headers: {{x-canary: {{exact: \"1\"}}}}}}]
    route: [{{destination: {{host: {host}, subset: v2}}}}]
  - route:
    - {{destination: {{host: {host}, subset: v1}}, weight: 90}}
    - {{destination: {{host: {host}, subset: v2}}, weight: 10}}
---
"
        );
    }
    out
}

/// The change the push-latency runs make: a new service each time, so clusters, endpoints and
/// routes all change and every client has something to ACK.
pub fn push_probe(generation: u64, endpoint_port: u16) -> String {
    service_entry(
        &format!("push-probe-{generation}"),
        8080,
        "HTTP",
        endpoint_port,
    )
}

/// Creates `dir` holding `files` (name, text): a config folder for weftd.
pub fn write_mesh(dir: &Path, files: &[(&str, &str)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Writes a file the way an editor or `kubectl cp` would: whole, in one rename, so weftd never
/// reads half of it. The temporary name is hidden, which weftd skips.
pub fn write_atomic(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_mesh_counts() {
        let text = scale_mesh(3, 2, 10, 80);
        assert_eq!(text.matches("kind: ServiceEntry").count(), 3);
        assert_eq!(text.matches("kind: VirtualService").count(), 2);
        assert_eq!(text.matches("prefix: /svc-").count(), 20);
    }

    #[test]
    fn istio_services_have_a_rule_and_a_virtual_service_each() {
        let text = istio_services(3, 80);
        assert_eq!(text.matches("kind: ServiceEntry").count(), 3);
        assert_eq!(text.matches("kind: DestinationRule").count(), 3);
        assert_eq!(text.matches("kind: VirtualService").count(), 3);
        assert_eq!(text.matches("subset: v2").count(), 6);
        assert!(text.contains("exact: \"1\""));
    }

    #[test]
    fn haproxy_map_has_every_route() {
        let map = haproxy_scale_map(1000, 10);
        assert_eq!(map.lines().count(), 10_001);
    }
}
