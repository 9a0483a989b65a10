//! Type URLs of the resources Weft serves and consumes, in the order the xDS protocol wants them
//! pushed: clusters before their endpoints, listeners before their routes.

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

pub const HTTP_CONNECTION_MANAGER: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
pub const HTTP_PROTOCOL_OPTIONS: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
pub const STDOUT_ACCESS_LOG: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";

/// `envoy.filters.network.tcp_proxy`: relays a connection's bytes to a cluster.
pub const TCP_PROXY: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
/// Listener filter `envoy.filters.listener.original_dst`: the iptables-redirected destination.
pub const ORIGINAL_DST_LISTENER_FILTER: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst";
/// Listener filter `envoy.filters.listener.tls_inspector`: TLS, SNI and ALPN from the ClientHello.
pub const TLS_INSPECTOR: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";
/// Listener filter `envoy.filters.listener.http_inspector`: HTTP/1.x or HTTP/2 from the first bytes.
pub const HTTP_INSPECTOR: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector";

/// The fault filter: its (empty) listener config and its per-route config share the type.
pub const HTTP_FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
/// The CORS filter's listener config.
pub const CORS: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors";
/// The CORS filter's per-route config.
pub const CORS_POLICY: &str =
    "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy";
/// The per-route wrapper that can mark a filter's config optional or disable the filter.
pub const ROUTE_FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";
/// Retry host predicate `envoy.retry_host_predicates.previous_hosts`.
pub const PREVIOUS_HOSTS_PREDICATE: &str =
    "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate";
/// Retry priority `envoy.retry_priorities.previous_priorities`.
pub const PREVIOUS_PRIORITIES_CONFIG: &str =
    "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig";

/// The push order: CDS, EDS, LDS, RDS ("make before break").
pub const PUSH_ORDER: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

/// The four resource types weft serves and consumes, as their constant (which code can keep
/// as `&'static str`); `None` for any other type URL.
pub fn known(type_url: &str) -> Option<&'static str> {
    PUSH_ORDER.into_iter().find(|t| *t == type_url)
}

/// The short name operators know a type by ("Cluster", "Listener", ...).
pub fn short_name(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

/// Whether a subscription to this type is a wildcard (all resources) rather than by name.
pub fn is_wildcard_type(type_url: &str) -> bool {
    type_url == CLUSTER || type_url == LISTENER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_gives_the_constant_of_the_four_types_only() {
        let url = String::from(CLUSTER);
        assert_eq!(known(&url), Some(CLUSTER));
        assert_eq!(known(ROUTE), Some(ROUTE));
        assert_eq!(known(HTTP_CONNECTION_MANAGER), None);
        assert_eq!(known(""), None);
    }
}
