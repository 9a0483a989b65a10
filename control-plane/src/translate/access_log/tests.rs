use super::*;
use crate::model::parse_mesh_config;
use crate::translate::tests::{decode, mesh, node};
use crate::translate::{translate, MeshSnapshot, TranslateOptions};
use prost::Message;
use std::path::Path;
use std::sync::Arc;
use xds_protos::node::ProxyMode;
use xds_protos::pb::envoy::config::listener::v3::{filter, Listener};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use xds_protos::type_url::{HTTP_CONNECTION_MANAGER, LISTENER, TCP_PROXY};

/// A workload at 10.0.0.1 serving HTTP on 9080, for a sidecar's inbound side.
const SERVICE: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
";

fn telemetry(name: &str, namespace: &str, selector: Option<&str>, logging: &str) -> String {
    let selector = selector
        .map(|s| format!("  selector: {{matchLabels: {{{s}}}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n{selector}  accessLogging:\n{logging}"
    )
}

fn snapshot(yaml: &[&str], mesh_config: &str, cli: Option<AccessLogFormat>) -> MeshSnapshot {
    let base = mesh(yaml);
    let mc = parse_mesh_config(Path::new("mesh.yaml"), mesh_config)
        .expect("mesh config")
        .config;
    MeshSnapshot::new(
        base.config,
        TranslateOptions {
            access_log: cli,
            mesh_config: Arc::new(mc),
        },
    )
}

fn labelled(namespace: &str, labels: &[(&str, &str)]) -> NodeIdentity {
    let mut n = node(namespace);
    n.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    n
}

fn sidecar(labels: &[(&str, &str)]) -> NodeIdentity {
    NodeIdentity {
        id: "sidecar~10.0.0.1~pod.default~default.svc.cluster.local".into(),
        namespace: "default".into(),
        mode: ProxyMode::Sidecar,
        ip: Some("10.0.0.1".into()),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// The connection managers of listener `name`, in chain order.
fn hcms(m: &MeshSnapshot, n: &NodeIdentity, name: &str) -> Vec<HttpConnectionManager> {
    let l: Listener = decode(&translate(m, n), LISTENER, name);
    l.filter_chains
        .iter()
        .flat_map(|c| c.filters.iter())
        .filter_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(any))
                if any.type_url == HTTP_CONNECTION_MANAGER =>
            {
                Some(HttpConnectionManager::decode(any.value.as_slice()).expect("hcm"))
            }
            _ => None,
        })
        .collect()
}

/// How many loggers each TCP proxy of listener `name` has, its default chain's included.
fn tcp_logger_counts(m: &MeshSnapshot, n: &NodeIdentity, name: &str) -> Vec<usize> {
    let l: Listener = decode(&translate(m, n), LISTENER, name);
    l.filter_chains
        .iter()
        .chain(l.default_filter_chain.iter())
        .flat_map(|c| c.filters.iter())
        .filter_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(any)) if any.type_url == TCP_PROXY => {
                Some(TcpProxy::decode(any.value.as_slice()).expect("tcp_proxy"))
            }
            _ => None,
        })
        .map(|p| {
            p.access_log.iter().for_each(|l| {
                decode_stdout(l);
            });
            p.access_log.len()
        })
        .collect()
}

/// The formats of the local proxy's loggers, decoded.
fn formats(m: &MeshSnapshot, n: &NodeIdentity) -> Vec<Option<SubstitutionFormatString>> {
    let h = hcms(m, n, "virtualOutbound").remove(0);
    h.access_log.iter().map(decode_stdout).collect()
}

fn decode_stdout(log: &AccessLog) -> Option<SubstitutionFormatString> {
    assert_eq!(log.name, STDOUT_LOGGER);
    let Some(access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
        panic!("no typed config")
    };
    assert_eq!(any.type_url, STDOUT_ACCESS_LOG);
    let config = StdoutAccessLog::decode(any.value.as_slice()).expect("stdout config");
    config.access_log_format.map(|f| match f {
        stdout_access_log::AccessLogFormat::LogFormat(f) => f,
    })
}

fn inline_text(f: &Option<SubstitutionFormatString>) -> &str {
    match f.as_ref().and_then(|f| f.format.as_ref()) {
        Some(substitution_format_string::Format::TextFormatSource(DataSource {
            specifier: Some(data_source::Specifier::InlineString(s)),
            ..
        })) => s,
        other => panic!("not an inline text format: {other:?}"),
    }
}

fn json_keys(f: &Option<SubstitutionFormatString>) -> Vec<String> {
    match f.as_ref().and_then(|f| f.format.as_ref()) {
        Some(substitution_format_string::Format::JsonFormat(s)) => {
            let mut keys: Vec<String> = s.fields.keys().cloned().collect();
            keys.sort();
            keys
        }
        other => panic!("not a JSON format: {other:?}"),
    }
}

#[test]
fn without_mesh_config_weftds_flag_decides() {
    let n = node("default");
    let istio = snapshot(&[], "", Some(AccessLogFormat::Istio));
    assert_eq!(inline_text(&formats(&istio, &n)[0]), ISTIO_TEXT_FORMAT);
    let envoy = snapshot(&[], "", Some(AccessLogFormat::Envoy));
    assert_eq!(
        formats(&envoy, &n),
        [None],
        "Envoy's default needs no format"
    );
    let json = snapshot(&[], "", Some(AccessLogFormat::Json));
    let mut istio_keys: Vec<String> = ISTIO_JSON_FIELDS
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    istio_keys.sort();
    assert_eq!(json_keys(&formats(&json, &n)[0]), istio_keys);
    assert!(formats(&snapshot(&[], "", None), &n).is_empty());
}

#[test]
fn mesh_config_file_and_encoding_apply() {
    let n = node("default");
    // accessLogFile turns the log on even when weftd was told --no-access-log (weftd clears
    // the mesh config's fields itself when a flag is given explicitly).
    let m = snapshot(
        &[],
        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n",
        None,
    );
    assert_eq!(json_keys(&formats(&m, &n)[0]).len(), 24);
    // Empty turns it off, whatever the default.
    let m = snapshot(&[], "accessLogFile: ''\n", Some(AccessLogFormat::Istio));
    assert!(formats(&m, &n).is_empty());
    // A custom text format, with the newline Istio adds.
    let m = snapshot(
        &[],
        "accessLogFile: /dev/stdout\naccessLogFormat: '%RESPONSE_CODE% %REQ(X-REQUEST-ID)%'\n",
        None,
    );
    assert_eq!(
        inline_text(&formats(&m, &n)[0]),
        "%RESPONSE_CODE% %REQ(X-REQUEST-ID)%\n"
    );
    // A custom JSON object, nested objects and all.
    let m = snapshot(
        &[],
        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n\
         accessLogFormat: '{\"code\": \"%RESPONSE_CODE%\", \"up\": {\"host\": \"%UPSTREAM_HOST%\"}}'\n",
        None,
    );
    let f = formats(&m, &n);
    let Some(substitution_format_string::Format::JsonFormat(s)) =
        f[0].as_ref().and_then(|f| f.format.as_ref())
    else {
        panic!("{f:?}")
    };
    assert_eq!(
        s.fields["code"].kind,
        Some(value::Kind::StringValue("%RESPONSE_CODE%".into()))
    );
    assert!(matches!(
        s.fields["up"].kind,
        Some(value::Kind::StructValue(_))
    ));
    // Without accessLogFile the mesh's format still comes from the mesh config.
    let m = snapshot(
        &[],
        "accessLogEncoding: JSON\n",
        Some(AccessLogFormat::Istio),
    );
    assert_eq!(json_keys(&formats(&m, &n)[0]).len(), 24);
}

#[test]
fn telemetry_disables_one_workload_and_a_narrower_scope_wins() {
    let off_for_b = telemetry(
        "quiet-b",
        "default",
        Some("app: b"),
        "  - providers: [{name: envoy}]\n    disabled: true\n",
    );
    let m = snapshot(&[&off_for_b], "", Some(AccessLogFormat::Istio));
    assert_eq!(formats(&m, &labelled("default", &[("app", "a")])).len(), 1);
    assert!(formats(&m, &labelled("default", &[("app", "b")])).is_empty());
    // Another namespace's workload selector does not reach here.
    assert_eq!(formats(&m, &labelled("shop", &[("app", "b")])).len(), 1);

    // Mesh-wide on (with weftd's log off), a namespace off, one of its workloads on again.
    let mesh_on = telemetry(
        "on",
        "istio-system",
        None,
        "  - providers: [{name: envoy}]\n",
    );
    let shop_off = telemetry("off", "shop", None, "  - disabled: true\n");
    let c_on = telemetry(
        "c",
        "shop",
        Some("app: c"),
        "  - providers: [{name: envoy}]\n",
    );
    let m = snapshot(&[&mesh_on, &shop_off, &c_on], "", None);
    assert_eq!(formats(&m, &labelled("default", &[])).len(), 1);
    assert!(formats(&m, &labelled("shop", &[("app", "x")])).is_empty());
    assert_eq!(formats(&m, &labelled("shop", &[("app", "c")])).len(), 1);
}

#[test]
fn match_mode_picks_the_side() {
    let no_server = telemetry(
        "t",
        "default",
        None,
        "  - providers: [{name: envoy}]\n  - providers: [{name: envoy}]\n    match: {mode: SERVER}\n    disabled: true\n",
    );
    let m = snapshot(&[SERVICE, &no_server], "", Some(AccessLogFormat::Istio));
    let pod = sidecar(&[]);
    let inbound = hcms(&m, &pod, "virtualInbound");
    assert!(!inbound.is_empty());
    assert!(inbound.iter().all(|h| h.access_log.is_empty()));
    let outbound = hcms(&m, &pod, "0.0.0.0_9080");
    assert_eq!(outbound[0].access_log.len(), 1);
    // TCP proxies log per connection, with their side's loggers: the inbound blackhole and
    // passthrough chains nothing, the outbound ones a line each.
    assert_eq!(tcp_logger_counts(&m, &pod, "virtualInbound"), [0, 0]);
    assert_eq!(tcp_logger_counts(&m, &pod, "virtualOutbound"), [1, 1]);
    // A local proxy's listener is the client side.
    assert_eq!(formats(&m, &node("default")).len(), 1);

    let client_only = telemetry(
        "t",
        "default",
        None,
        "  - providers: [{name: envoy}]\n    match: {mode: CLIENT}\n",
    );
    let m = snapshot(&[SERVICE, &client_only], "", None);
    assert!(hcms(&m, &pod, "virtualInbound")[0].access_log.is_empty());
    assert_eq!(hcms(&m, &pod, "0.0.0.0_9080")[0].access_log.len(), 1);
    assert_eq!(tcp_logger_counts(&m, &pod, "virtualInbound"), [0, 0]);
    // Without Telemetry, weftd's default log is on both sides, TCP included.
    let m = snapshot(&[SERVICE], "", Some(AccessLogFormat::Istio));
    assert_eq!(tcp_logger_counts(&m, &pod, "virtualInbound"), [1, 1]);
    assert_eq!(tcp_logger_counts(&m, &pod, "virtualOutbound"), [1, 1]);
}

#[test]
fn providers_write_in_their_own_format_and_defaults_apply_without_telemetry() {
    let mesh_config = "extensionProviders:\n\
        - name: labelled\n  envoyFileAccessLog:\n    logFormat:\n      labels: {code: '%RESPONSE_CODE%'}\n\
        - name: plain\n  envoyFileAccessLog: {path: /dev/stdout}\n\
        defaultProviders:\n  accessLogging: [labelled]\n";
    let m = snapshot(&[], mesh_config, Some(AccessLogFormat::Json));
    let n = node("default");
    assert_eq!(json_keys(&formats(&m, &n)[0]), ["code"]);
    // A Telemetry naming providers replaces the defaults; a provider without a format writes
    // Istio's text line, the built-in one the mesh's format (here weftd's JSON).
    let both = telemetry(
        "t",
        "default",
        None,
        "  - providers: [{name: plain}, {name: envoy}]\n",
    );
    let m = snapshot(&[&both], mesh_config, Some(AccessLogFormat::Json));
    let f = formats(&m, &n);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(json_keys(&f[0]).len(), 24, "envoy sorts first");
    assert_eq!(inline_text(&f[1]), ISTIO_TEXT_FORMAT);
    // An unknown provider writes nothing (and is logged by weftd).
    let unknown = telemetry("t", "default", None, "  - providers: [{name: nope}]\n");
    let m = snapshot(&[&unknown], "", Some(AccessLogFormat::Istio));
    assert!(formats(&m, &n).is_empty());
}

#[test]
fn proxies_share_listeners_unless_a_selector_tells_them_apart() {
    let off_for_b = telemetry(
        "quiet-b",
        "default",
        Some("app: b"),
        "  - providers: [{name: envoy}]\n    disabled: true\n",
    );
    let m = snapshot(&[&off_for_b], "", Some(AccessLogFormat::Istio));
    let a1 = labelled("default", &[("app", "a"), ("pod", "1")]);
    let a2 = labelled("default", &[("app", "a"), ("pod", "2")]);
    let b = labelled("default", &[("app", "b")]);
    for n in [&a1, &a2, &b] {
        assert_eq!(m.generate_shared(n), translate(&m, n));
    }
    assert_eq!(
        m.translation_counts().listeners,
        2,
        "a1 and a2 differ only in a label no selector reads"
    );
    // Without Telemetry access logging, the proxy's labels do not matter.
    let m = snapshot(&[], "", Some(AccessLogFormat::Istio));
    for n in [&a1, &a2, &b, &labelled("shop", &[])] {
        m.generate_shared(n);
    }
    assert_eq!(m.translation_counts().listeners, 1);
}

#[test]
fn an_explicit_flag_replaces_the_mesh_configs_log() {
    let parsed = |yaml: &str| {
        parse_mesh_config(Path::new("mesh.yaml"), yaml)
            .expect("mesh config")
            .config
    };
    let json_file = "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n";
    // No flag: the mesh config stays and decides; the default stands behind it.
    let mut mc = parsed(json_file);
    assert_eq!(
        apply_flags(&mut mc, false, None),
        (Some(AccessLogFormat::Istio), false)
    );
    assert_eq!(mc.access_log.format, Some(LogLine::IstioJson));
    // An explicit format replaces it.
    let mut mc = parsed(json_file);
    assert_eq!(
        apply_flags(&mut mc, false, Some(AccessLogFormat::Envoy)),
        (Some(AccessLogFormat::Envoy), true)
    );
    assert_eq!((mc.access_log.file, mc.access_log.format), (None, None));
    // So does --no-access-log; Telemetry providers and defaults are untouched.
    let mut mc = parsed("accessLogFile: /dev/stdout\ndefaultProviders: {accessLogging: [envoy]}\n");
    assert_eq!(apply_flags(&mut mc, true, None), (None, true));
    assert_eq!(mc.access_log.default_providers, ["envoy"]);
    // Nothing to replace: nothing reported.
    let mut mc = parsed("");
    assert_eq!(apply_flags(&mut mc, true, None), (None, false));
}
