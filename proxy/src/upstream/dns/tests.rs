//! The cache's behaviour on a paused clock, with a resolver the test scripts.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Answers what the test last set, after `delay`, and counts the questions.
struct Scripted {
    answer: Mutex<Resolution>,
    delay: Duration,
    asked: AtomicUsize,
}

impl Scripted {
    fn new(answer: Resolution, delay: Duration) -> Arc<Self> {
        Arc::new(Scripted {
            answer: Mutex::new(answer),
            delay,
            asked: AtomicUsize::new(0),
        })
    }

    fn set(&self, answer: Resolution) {
        *self.answer.lock().unwrap() = answer;
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl Resolve for Scripted {
    fn resolve(&self, _host: &str, _port: u16) -> BoxFuture<'static, Resolution> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.lock().unwrap().clone();
        let delay = self.delay;
        async move {
            tokio::time::sleep(delay).await;
            answer
        }
        .boxed()
    }
}

fn at(ip: [u8; 4]) -> SocketAddr {
    SocketAddr::from((ip, 8000))
}

fn found(ip: [u8; 4]) -> Resolution {
    Resolution::Found(vec![at(ip)])
}

const REFRESH: Duration = Duration::from_secs(5);

/// Lets spawned refreshes run to completion on the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_last_good_addresses() {
    let resolver = Scripted::new(found([10, 0, 0, 1]), Duration::ZERO);
    let cache = DnsCache::new(resolver.clone(), REFRESH);
    assert_eq!(cache.lookup("svc", 8000).await.unwrap(), at([10, 0, 0, 1]));

    resolver.set(Resolution::Failed("SERVFAIL".into()));
    for _ in 0..3 {
        tokio::time::advance(REFRESH).await;
        // Due: a refresh starts, and this connection still gets the last good address.
        assert_eq!(cache.lookup("svc", 8000).await.unwrap(), at([10, 0, 0, 1]));
        settle().await;
        assert_eq!(cache.lookup("svc", 8000).await.unwrap(), at([10, 0, 0, 1]));
    }
    assert_eq!(
        resolver.asked(),
        4,
        "one refresh per interval, not per connection"
    );

    // The name resolves again, elsewhere: traffic moves with the next refresh.
    resolver.set(found([10, 0, 0, 2]));
    tokio::time::advance(REFRESH).await;
    cache.lookup("svc", 8000).await.unwrap();
    settle().await;
    assert_eq!(cache.lookup("svc", 8000).await.unwrap(), at([10, 0, 0, 2]));
}

#[tokio::test(start_paused = true)]
async fn a_fresh_name_is_not_asked_again_before_the_refresh_interval() {
    let resolver = Scripted::new(found([10, 0, 0, 1]), Duration::ZERO);
    let cache = DnsCache::new(resolver.clone(), REFRESH);
    for _ in 0..10 {
        cache.lookup("svc", 8000).await.unwrap();
        tokio::time::advance(Duration::from_millis(400)).await;
    }
    assert_eq!(resolver.asked(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    cache.lookup("svc", 8000).await.unwrap();
    assert_eq!(resolver.asked(), 2);
    // Another port of the same name is its own entry.
    cache.lookup("svc", 9000).await.unwrap();
    assert_eq!(resolver.asked(), 3);
}

#[tokio::test(start_paused = true)]
async fn connections_to_a_name_never_resolved_share_one_query() {
    let resolver = Scripted::new(found([10, 0, 0, 1]), Duration::from_millis(300));
    let cache = DnsCache::new(resolver.clone(), REFRESH);
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.lookup("svc", 8000).await })
        })
        .collect();
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap(), at([10, 0, 0, 1]));
    }
    assert_eq!(resolver.asked(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_outlives_a_connection_that_gave_up_waiting() {
    let resolver = Scripted::new(found([10, 0, 0, 1]), Duration::from_secs(2));
    let cache = DnsCache::new(resolver.clone(), REFRESH);
    let gave_up = tokio::time::timeout(Duration::from_secs(1), cache.lookup("svc", 8000)).await;
    assert!(gave_up.is_err());
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    // The query went on and its answer is there without asking again.
    assert_eq!(cache.lookup("svc", 8000).await.unwrap(), at([10, 0, 0, 1]));
    assert_eq!(resolver.asked(), 1);
}

#[tokio::test(start_paused = true)]
async fn without_a_last_good_answer_failures_fail_fast_until_the_next_refresh() {
    let resolver = Scripted::new(Resolution::Failed("timeout".into()), Duration::ZERO);
    let cache = DnsCache::new(resolver.clone(), REFRESH);
    let err = cache.lookup("svc", 8000).await.unwrap_err();
    assert!(matches!(err, DnsError::Failed { .. }), "{err}");
    for _ in 0..5 {
        assert!(cache.lookup("svc", 8000).await.is_err());
    }
    assert_eq!(
        resolver.asked(),
        1,
        "a dead resolver is not asked per connection"
    );
    resolver.set(found([10, 0, 0, 3]));
    tokio::time::advance(REFRESH).await;
    assert_eq!(cache.lookup("svc", 8000).await.unwrap(), at([10, 0, 0, 3]));
}

/// As Envoy's strict DNS cluster: a name that no longer exists has no host, unlike a
/// resolver that failed.
#[tokio::test(start_paused = true)]
async fn a_name_with_no_address_any_more_has_no_host() {
    let resolver = Scripted::new(found([10, 0, 0, 1]), Duration::ZERO);
    let cache = DnsCache::new(resolver.clone(), REFRESH);
    cache.lookup("svc", 8000).await.unwrap();
    resolver.set(Resolution::NoRecords);
    tokio::time::advance(REFRESH).await;
    // This connection still had the old address; the refresh removes it.
    cache.lookup("svc", 8000).await.unwrap();
    settle().await;
    let err = cache.lookup("svc", 8000).await.unwrap_err();
    assert!(matches!(err, DnsError::NoAddress { .. }), "{err}");
}

/// The cache is process-wide and outlives runtimes (each test has its own): a refresh whose
/// runtime ended before it answered must not leave the name stuck.
#[test]
fn a_refresh_cut_off_with_its_runtime_does_not_block_the_next() {
    let resolver = Scripted::new(found([10, 0, 0, 1]), Duration::from_secs(3600));
    let cache = DnsCache::new(resolver.clone(), REFRESH);
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        let waited = tokio::time::timeout(Duration::from_millis(10), cache.lookup("svc", 8000));
        assert!(waited.await.is_err());
    });
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        // The first query never answered; a lookup now starts another (which also waits an
        // hour, so bound it) instead of waiting on the dead one forever.
        let waited = tokio::time::timeout(Duration::from_millis(10), cache.lookup("svc", 8000));
        assert!(waited.await.is_err());
    });
    assert_eq!(resolver.asked(), 2);
}
