use super::*;

fn key(listener: &str, max: u64) -> LimiterKey {
    LimiterKey {
        listener: listener.into(),
        chain: "filter_chains[0]".into(),
        stat_prefix: "inbound_9080".into(),
        max_connections: max,
        delay: None,
    }
}

fn page(table: &LimiterTable) -> String {
    let mut page = Page::default();
    table.render(&mut page);
    let mut out = String::new();
    page.render(&mut out);
    out
}

#[test]
fn admits_up_to_the_limit_and_counts_the_rest_until_one_closes() {
    let table = LimiterTable::default();
    let limiter = table.limiter(key("l", 2));
    let a = limiter.try_admit().expect("first");
    let _b = limiter.try_admit().expect("second");
    assert!(limiter.try_admit().is_none());
    assert!(limiter.try_admit().is_none());
    assert_eq!(limiter.open(), 2);
    drop(a);
    let _c = limiter.try_admit().expect("room again after a close");
    let out = page(&table);
    assert!(
        out.contains("# TYPE envoy_connection_limit_active_connections gauge\n"),
        "{out}"
    );
    assert!(out.contains(
        "envoy_connection_limit_active_connections{envoy_connection_limit_prefix=\"inbound_9080\"} 2\n"
    ), "{out}");
    assert!(out.contains(
        "envoy_connection_limit_limited_connections{envoy_connection_limit_prefix=\"inbound_9080\"} 2\n"
    ), "{out}");
}

#[test]
fn an_unchanged_filter_keeps_its_count_and_a_changed_one_starts_anew() {
    let table = LimiterTable::default();
    let first = table.limiter(key("l", 1));
    let _open = first.try_admit().expect("admitted");
    // A listener update that recompiles the same filter: the same limiter, still full.
    let again = table.limiter(key("l", 1));
    assert!(Arc::ptr_eq(&first, &again));
    assert!(again.try_admit().is_none());
    // New settings (or another listener): a new count, on the prefix's shared stats.
    let raised = table.limiter(key("l", 2));
    assert_eq!(raised.open(), 0);
    assert!(raised.try_admit().is_some());
    assert!(table.limiter(key("other", 1)).try_admit().is_some());
    let out = page(&table);
    assert_eq!(
        out.matches("envoy_connection_limit_prefix=\"inbound_9080\"")
            .count(),
        2,
        "{out}"
    );
}

#[test]
fn limiters_no_config_or_connection_holds_are_forgotten() {
    let table = LimiterTable::default();
    let kept = table.limiter(key("kept", 1));
    let admitted = table.limiter(key("open", 1)).try_admit().expect("admitted");
    drop(table.limiter(key("gone", 1)));
    // Pruned when the next new limiter is made.
    let _next = table.limiter(key("next", 1));
    assert_eq!(table.limiters(), 3);
    drop((kept, admitted));
}

#[test]
fn a_slot_resolves_once() {
    let table = LimiterTable::default();
    let slot = LimiterSlot::default();
    let a = slot.get_or_resolve(&table, || key("l", 1)).clone();
    let b = slot
        .get_or_resolve(&table, || unreachable!("resolved already"))
        .clone();
    assert!(Arc::ptr_eq(&a, &b));
}

#[tokio::test(start_paused = true)]
async fn refusals_are_logged_once_per_period() {
    let table = LimiterTable::default();
    let limiter = table.limiter(key("l", 1));
    assert_eq!(limiter.log_refusal(), Some(0));
    assert_eq!(limiter.log_refusal(), None);
    tokio::time::sleep(crate::log_throttle::LOG_EVERY).await;
    assert_eq!(limiter.log_refusal(), Some(1));
}
