//! Log hub behaviour on real files: replay, live delivery, resume, lag, odd content.

use std::time::{Duration, Instant};

use super::*;

const WAIT: Duration = Duration::from_secs(10);

fn hub() -> (tempfile::TempDir, LogHub) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = LogHub::new(dir.path());
    (dir, hub)
}

fn qid(s: &str) -> QueueId {
    QueueId::parse(s).expect("valid id")
}

async fn next(f: &mut LogFollower) -> FollowItem {
    tokio::time::timeout(WAIT, f.next())
        .await
        .expect("the follower answered in time")
}

/// Everything up to `Idle`, as the file would read: batches joined, each ended by `\n`.
async fn read_to_idle(f: &mut LogFollower) -> (String, Vec<u64>) {
    let mut text = String::new();
    let mut ends = Vec::new();
    loop {
        match next(f).await {
            FollowItem::Batch(b) => {
                text.push_str(&b.text);
                text.push('\n');
                ends.push(b.end_offset);
            }
            FollowItem::Idle => return (text, ends),
            FollowItem::Failed(e) => panic!("follow failed: {e}"),
        }
    }
}

#[tokio::test]
async fn finished_log_replays_exactly_then_idles() {
    let (_dir, hub) = hub();
    let id = qid("q1");
    let w = hub.writer(&id).unwrap();
    assert!(hub.is_live(&id));
    for i in 0..1000 {
        w.line(&format!("line {i}"));
    }
    w.line("");
    w.close().await.unwrap();
    assert!(!hub.is_live(&id));

    let file = std::fs::read_to_string(hub.path(&id)).unwrap();
    let mut f = hub.subscribe(&id, 0).unwrap();
    let (text, ends) = read_to_idle(&mut f).await;
    assert_eq!(text, file);
    assert_eq!(*ends.last().unwrap(), file.len() as u64);
    assert_eq!(f.offset(), file.len() as u64);
}

#[tokio::test]
async fn live_lines_arrive_within_milliseconds() {
    let (_dir, hub) = hub();
    let id = qid("live");
    let w = hub.writer(&id).unwrap();
    let mut f = hub.subscribe(&id, 0).unwrap();
    for i in 0..5 {
        let sent = Instant::now();
        w.line(&format!("tick {i}"));
        let FollowItem::Batch(b) = next(&mut f).await else {
            panic!("expected a batch")
        };
        assert_eq!(b.text, format!("tick {i}"));
        assert!(
            sent.elapsed() < Duration::from_millis(200),
            "{:?}",
            sent.elapsed()
        );
    }
    w.close().await.unwrap();
    assert!(matches!(next(&mut f).await, FollowItem::Idle));
}

#[tokio::test]
async fn resume_from_any_line_start_and_reject_others() {
    let (_dir, hub) = hub();
    let id = qid("resume");
    let w = hub.writer(&id).unwrap();
    w.line("alpha");
    w.line("beta");
    w.close().await.unwrap();

    let mut f = hub.subscribe(&id, 6).unwrap();
    assert_eq!(read_to_idle(&mut f).await.0, "beta\n");
    let mut f = hub.subscribe(&id, 11).unwrap();
    assert_eq!(read_to_idle(&mut f).await.0, "");

    let err = hub
        .subscribe(&id, 3)
        .err()
        .expect("mid-line offset refused");
    assert!(matches!(err, FollowError::NotLineBoundary(3)));
    assert!(err.to_string().contains("not the start of a line"), "{err}");
    let err = hub
        .subscribe(&id, 12)
        .err()
        .expect("offset past the end refused");
    assert!(matches!(err, FollowError::PastEnd(12, 11)));
    assert!(err.to_string().contains("resume from 11 or less"), "{err}");
    // A queue without a log yet: only 0.
    assert!(hub.subscribe(&qid("none"), 0).is_ok());
    assert!(hub.subscribe(&qid("none"), 1).is_err());
}

#[tokio::test]
async fn splits_newlines_and_drops_carriage_returns() {
    let (_dir, hub) = hub();
    let id = qid("split");
    let w = hub.writer(&id).unwrap();
    w.line("a\r\nb\n");
    w.line("c\rd");
    w.close().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(hub.path(&id)).unwrap(),
        "a\nb\ncd\n"
    );
}

#[tokio::test]
async fn a_slow_follower_loses_nothing_and_does_not_hold_up_a_fast_one() {
    let (_dir, hub) = hub();
    let id = qid("lag");
    let w = hub.writer(&id).unwrap();
    let mut slow = hub.subscribe(&id, 0).unwrap();
    let mut fast = hub.subscribe(&id, 0).unwrap();
    let writer = {
        let w = w.clone();
        tokio::spawn(async move {
            // Enough chunks to overrun the channel many times over.
            for i in 0..200_000 {
                w.line(&format!("line {i:06} {}", "x".repeat(i % 50)));
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // The fast follower reaches the last line while the slow one has not read anything.
    let fast_reader = tokio::spawn(async move {
        loop {
            match next(&mut fast).await {
                FollowItem::Batch(b)
                    if b.lines()
                        .next_back()
                        .is_some_and(|l| l.starts_with("line 199999")) =>
                {
                    return fast;
                }
                FollowItem::Batch(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    writer.await.unwrap();
    let fast = fast_reader.await.unwrap();
    assert!(fast.offset() > 0);
    w.close().await.unwrap();
    let (text, ends) = read_to_idle(&mut slow).await;
    let file = std::fs::read_to_string(hub.path(&id)).unwrap();
    assert_eq!(text.len(), file.len());
    assert!(
        text == file,
        "the slow follower's copy differs from the file"
    );
    assert!(ends.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn a_one_mebibyte_line_travels_whole() {
    let (_dir, hub) = hub();
    let id = qid("big");
    let w = hub.writer(&id).unwrap();
    let mut f = hub.subscribe(&id, 0).unwrap();
    let big = "y".repeat(1 << 20);
    w.line("before");
    w.line(&big);
    w.line("after");
    w.close().await.unwrap();
    let (text, _) = read_to_idle(&mut f).await;
    assert_eq!(text, format!("before\n{big}\nafter\n"));
    let mut replay = hub.subscribe(&id, 7).unwrap();
    let FollowItem::Batch(b) = next(&mut replay).await else {
        panic!("expected a batch")
    };
    assert!(b.text.starts_with(&big));
}

#[tokio::test]
async fn invalid_utf8_in_the_file_is_read_lossily() {
    let (_dir, hub) = hub();
    let id = qid("bytes");
    let path = hub.path(&id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"ok\nbad \xff\xfe here\nend\n").unwrap();
    let mut f = hub.subscribe(&id, 0).unwrap();
    let (text, ends) = read_to_idle(&mut f).await;
    assert_eq!(text, "ok\nbad \u{fffd}\u{fffd} here\nend\n");
    assert_eq!(ends.last(), Some(&19));
}

#[tokio::test]
async fn one_writer_at_a_time_and_a_rerun_appends() {
    let (_dir, hub) = hub();
    let id = qid("rerun");
    let w = hub.writer(&id).unwrap();
    let err = hub.writer(&id).err().expect("second writer refused");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    w.line("run 1");
    w.close().await.unwrap();
    // A cut last line (a crash mid-write) is ended before the next run appends.
    let path = hub.path(&id);
    let mut content = std::fs::read(&path).unwrap();
    content.extend_from_slice(b"torn");
    std::fs::write(&path, &content).unwrap();
    let w = hub.writer(&id).unwrap();
    w.line("run 2");
    drop(w);
    assert!(
        !hub.is_live(&id),
        "dropping the last clone ends the live state"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "run 1\ntorn\nrun 2\n");
}

#[tokio::test]
async fn an_idle_follower_picks_up_the_next_run() {
    let (_dir, hub) = hub();
    let id = qid("wait");
    let mut f = hub.subscribe(&id, 0).unwrap();
    assert!(matches!(next(&mut f).await, FollowItem::Idle));
    let waiting = tokio::spawn(async move {
        let item = next(&mut f).await;
        (item, f)
    });
    let w = hub.writer(&id).unwrap();
    w.line("started");
    let (item, mut f) = waiting.await.unwrap();
    let FollowItem::Batch(b) = item else {
        panic!("expected a batch, got {item:?}")
    };
    assert_eq!(b.text, "started");
    w.close().await.unwrap();
    assert!(matches!(next(&mut f).await, FollowItem::Idle));
}

#[tokio::test]
async fn is_idle_turns_false_as_soon_as_a_writer_opens() {
    let (_dir, hub) = hub();
    let id = qid("idle");
    let mut f = hub.subscribe(&id, 0).unwrap();
    assert!(!f.is_idle());
    assert!(matches!(next(&mut f).await, FollowItem::Idle));
    assert!(f.is_idle());
    // A whole run happens before the follower is polled again.
    let w = hub.writer(&id).unwrap();
    assert!(!f.is_idle());
    w.line("quick");
    w.close().await.unwrap();
    let FollowItem::Batch(b) = next(&mut f).await else {
        panic!("expected the quick run's line")
    };
    assert_eq!(b.text, "quick");
    assert!(!f.is_idle());
    assert!(matches!(next(&mut f).await, FollowItem::Idle));
    assert!(f.is_idle());
}

#[tokio::test]
async fn lines_keep_their_order_per_writer_clone() {
    let (_dir, hub) = hub();
    let id = qid("order");
    let w = hub.writer(&id).unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let w = w.clone();
            tokio::spawn(async move {
                for i in 0..2000 {
                    w.line(&format!("{t} {i}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    w.sync().await.unwrap();
    let text = std::fs::read_to_string(hub.path(&id)).unwrap();
    for t in 0..4 {
        let seen: Vec<usize> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{t} ")))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(seen, (0..2000).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn next_can_be_cancelled_without_losing_lines() {
    let (_dir, hub) = hub();
    let id = qid("cancel");
    let w = hub.writer(&id).unwrap();
    let mut f = hub.subscribe(&id, 0).unwrap();
    let mut got = String::new();
    for i in 0..300 {
        w.line(&format!("n{i}"));
        // Poll briefly, often dropping `next` mid-wait.
        if let Ok(FollowItem::Batch(b)) =
            tokio::time::timeout(Duration::from_micros(200), f.next()).await
        {
            got.push_str(&b.text);
            got.push('\n');
        }
    }
    w.close().await.unwrap();
    got.push_str(&read_to_idle(&mut f).await.0);
    assert_eq!(got, std::fs::read_to_string(hub.path(&id)).unwrap());
}

#[test]
fn markers() {
    assert_eq!(
        marker("step", "checkout", "started"),
        "=== step checkout started"
    );
    assert_eq!(
        marker("test", "boot and ping", "passed"),
        "=== test boot_and_ping passed"
    );
}
