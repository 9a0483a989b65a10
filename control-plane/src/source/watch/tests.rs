use super::*;
use std::fs;
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-watch-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    dir
}

async fn expect_signal(rx: &mut mpsc::Receiver<()>, what: &str) {
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(matches!(got, Ok(Some(()))), "no signal after {what}");
}

async fn expect_quiet(rx: &mut mpsc::Receiver<()>, what: &str) {
    let got = tokio::time::timeout(Duration::from_millis(400), rx.recv()).await;
    assert!(got.is_err(), "unexpected signal after {what}");
}

#[tokio::test]
async fn create_modify_rename_and_remove_each_signal_once() {
    let dir = temp_dir("events");
    let mut rx = try_watch_dir(dir.clone(), DEBOUNCE).expect("watch");
    expect_quiet(&mut rx, "start").await;

    fs::write(dir.join("a.yaml"), "a: 1\n").expect("write");
    expect_signal(&mut rx, "create").await;
    expect_quiet(&mut rx, "create").await;

    fs::write(dir.join("a.yaml"), "a: 2\n").expect("write");
    expect_signal(&mut rx, "modify").await;

    // How editors save: write a temporary file, rename it over the old one.
    fs::write(dir.join(".a.yaml.tmp"), "a: 3\n").expect("write");
    fs::rename(dir.join(".a.yaml.tmp"), dir.join("a.yaml")).expect("rename");
    expect_signal(&mut rx, "rename").await;

    fs::create_dir_all(dir.join("sub")).expect("mkdir");
    expect_signal(&mut rx, "mkdir").await;
    fs::write(dir.join("sub/b.yaml"), "b: 1\n").expect("write");
    expect_signal(&mut rx, "create in a subfolder").await;

    fs::remove_file(dir.join("a.yaml")).expect("remove");
    expect_signal(&mut rx, "remove").await;
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_burst_of_events_gives_one_signal() {
    let dir = temp_dir("burst");
    let mut rx = try_watch_dir(dir.clone(), Duration::from_millis(200)).expect("watch");
    for i in 0..20 {
        fs::write(dir.join(format!("f{i}.yaml")), "x: 1\n").expect("write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    expect_signal(&mut rx, "a burst").await;
    expect_quiet(&mut rx, "the burst").await;
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_missing_folder_falls_back_to_polling() {
    let dir = temp_dir("poll");
    let missing = dir.join("later");
    assert!(try_watch_dir(missing.clone(), DEBOUNCE).is_err());
    let mut rx = watch_dir(missing.clone());
    fs::create_dir_all(&missing).expect("mkdir");
    fs::write(missing.join("a.yaml"), "a: 1\n").expect("write");
    expect_signal(&mut rx, "the folder appeared").await;
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test(start_paused = true)]
async fn a_folder_that_never_quiets_down_is_signalled_after_the_maximum_wait() {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let (tx, mut rx) = mpsc::channel(1);
    let quiet = Duration::from_millis(100);
    tokio::spawn(debounce(raw_rx, tx, quiet, DEBOUNCE_MAX, None));
    let start = tokio::time::Instant::now();
    // An event every 50 ms: never 100 ms of quiet.
    let first_signal = loop {
        raw_tx.send(()).expect("debouncer alive");
        tokio::select! {
            _ = rx.recv() => break start.elapsed(),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        assert!(start.elapsed() <= DEBOUNCE_MAX * 2, "never signalled");
    };
    assert!(first_signal >= DEBOUNCE_MAX, "{first_signal:?}");
    assert!(first_signal <= DEBOUNCE_MAX + quiet, "{first_signal:?}");
}

#[tokio::test(start_paused = true)]
async fn a_single_event_is_signalled_after_the_quiet_period() {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let (tx, mut rx) = mpsc::channel(1);
    let quiet = Duration::from_millis(100);
    tokio::spawn(debounce(raw_rx, tx, quiet, DEBOUNCE_MAX, None));
    let start = tokio::time::Instant::now();
    raw_tx.send(()).expect("debouncer alive");
    rx.recv().await.expect("signal");
    assert_eq!(start.elapsed(), quiet);
}
