use super::*;

fn page(table: &HcmStatsTable) -> String {
    let mut page = Page::default();
    table.render(&mut page);
    let mut out = String::new();
    page.render(&mut out);
    out
}

fn value(page: &str, series: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
}

const PREFIX: &str = "envoy_http_conn_manager_prefix=\"outbound_0.0.0.0_9080\"";

#[test]
fn requests_render_with_envoys_names_labels_and_types() {
    let table = HcmStatsTable::default();
    let s = table.for_prefix("outbound_0.0.0.0_9080");
    for (http2, status, completed) in [(false, 200, true), (true, 503, true), (false, 0, false)] {
        s.request_started(http2);
        s.request_ended(status, completed);
    }
    s.request_started(false);
    let out = page(&table);
    assert_eq!(
        value(&out, &format!("envoy_http_downstream_rq_total{{{PREFIX}}}")),
        4
    );
    assert_eq!(
        value(
            &out,
            &format!("envoy_http_downstream_rq_http1_total{{{PREFIX}}}")
        ),
        3
    );
    assert_eq!(
        value(
            &out,
            &format!("envoy_http_downstream_rq_http2_total{{{PREFIX}}}")
        ),
        1
    );
    assert_eq!(
        value(
            &out,
            &format!("envoy_http_downstream_rq_active{{{PREFIX}}}")
        ),
        1
    );
    assert_eq!(
        value(
            &out,
            &format!("envoy_http_downstream_rq_completed{{{PREFIX}}}")
        ),
        2
    );
    assert_eq!(
        value(
            &out,
            &format!("envoy_http_downstream_rq_rx_reset{{{PREFIX}}}")
        ),
        1
    );
    // Envoy's label order: the stat's own tag before the prefix.
    let class =
        |c| format!("envoy_http_downstream_rq_xx{{envoy_response_code_class=\"{c}\",{PREFIX}}}");
    assert_eq!(value(&out, &class("2")), 1);
    assert_eq!(value(&out, &class("5")), 1);
    assert_eq!(value(&out, &class("4")), 0);
    assert!(
        out.contains("# TYPE envoy_http_downstream_rq_active gauge\n"),
        "{out}"
    );
    assert!(
        out.contains("# TYPE envoy_http_downstream_rq_total counter\n"),
        "{out}"
    );
}

#[test]
fn a_prefix_keeps_its_series_across_lookups_and_prefixes_are_apart() {
    let table = HcmStatsTable::default();
    table.for_prefix("a").request_started(false);
    // A recompiled connection manager with the same prefix resolves the same series.
    table.for_prefix("a").request_started(false);
    table.for_prefix("b");
    let out = page(&table);
    assert_eq!(
        value(
            &out,
            "envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"a\"}"
        ),
        2
    );
    assert_eq!(
        value(
            &out,
            "envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"b\"}"
        ),
        0
    );
    assert_eq!(
        out.matches("# TYPE envoy_http_downstream_rq_total ")
            .count(),
        1
    );
}

#[test]
fn codes_outside_http_count_in_no_class() {
    let s = HcmStats::new("p");
    for status in [0, 99, 600, 999] {
        s.response_code(status);
    }
    s.response_code(101);
    let counts: Vec<u64> = s
        .downstream_rq_xx
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    assert_eq!(counts, [1, 0, 0, 0, 0]);
}

#[test]
fn connections_count_protocol_and_how_they_ended() {
    let s = Arc::new(HcmStats::new("p"));
    let load = |c: &Cell| c.load(Ordering::Relaxed);
    {
        let cx = s.connection_opened();
        cx.protocol(true);
        cx.protocol(false); // only the first request's protocol counts
        assert_eq!(load(&s.downstream_cx_active), 1);
        assert_eq!(load(&s.downstream_cx_http2_active), 1);
        cx.ended(ConnectionEnd::Idle, 0);
    }
    {
        let cx = s.connection_opened();
        cx.protocol(false);
        cx.ended(ConnectionEnd::Remote, 2);
        cx.ended(ConnectionEnd::Drain, 0); // a connection ends once
    }
    // Dropped without a reason: the client went away.
    drop(s.connection_opened());
    {
        let cx = s.connection_opened();
        cx.ended(ConnectionEnd::Drain, 1);
    }
    assert_eq!(load(&s.downstream_cx_total), 4);
    assert_eq!(load(&s.downstream_cx_active), 0);
    assert_eq!(load(&s.downstream_cx_http1_active), 0);
    assert_eq!(load(&s.downstream_cx_http2_active), 0);
    assert_eq!(load(&s.downstream_cx_http1_total), 1);
    assert_eq!(load(&s.downstream_cx_http2_total), 1);
    assert_eq!(load(&s.downstream_cx_destroy), 4);
    assert_eq!(load(&s.downstream_cx_destroy_remote), 2);
    assert_eq!(load(&s.downstream_cx_destroy_local), 2);
    assert_eq!(load(&s.downstream_cx_destroy_active_rq), 2);
    assert_eq!(load(&s.downstream_cx_destroy_remote_active_rq), 1);
    assert_eq!(load(&s.downstream_cx_destroy_local_active_rq), 1);
    assert_eq!(load(&s.downstream_cx_idle_timeout), 1);
    assert_eq!(load(&s.downstream_cx_drain_close), 1);
}
