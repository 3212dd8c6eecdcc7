//! Helpers for the tests of this module: shell specs, bounded waits and process-group checks.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

use super::group;
use super::{Line, Spec};

/// Grace period used by the tests.
pub(crate) const GRACE: Duration = Duration::from_millis(300);

/// Upper bound for anything a test waits for.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// Prints `pgid <n>`, then starts two grandchildren that ignore `SIGTERM`; each prints
/// `child ready` once its trap is set. The leader waits for them.
pub(crate) const STUBBORN: &str = r#"
echo "pgid $$"
for i in 1 2; do
  sh -c 'trap "" TERM; echo child ready; exec sleep 30' &
done
wait
"#;

pub(crate) fn sh(script: &str) -> Spec {
    Spec::shell(script, std::env::temp_dir())
}

/// Awaits `future`, failing the test when it takes longer than `limit`.
pub(crate) async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: not done within {limit:?}"),
    }
}

/// Receives lines until `count` lines equal to `text` arrived; returns all lines received.
pub(crate) async fn until_lines(
    rx: &mut mpsc::Receiver<Line>,
    text: &str,
    count: usize,
) -> Vec<Line> {
    within(PATIENCE, &format!("{count} x {text:?}"), async {
        let mut seen = Vec::new();
        while seen.iter().filter(|l: &&Line| l.text == text).count() < count {
            match rx.recv().await {
                Some(line) => seen.push(line),
                None => panic!("channel closed before {count} x {text:?}: {seen:?}"),
            }
        }
        seen
    })
    .await
}

/// Receives every remaining line until the channel closes.
pub(crate) async fn rest(rx: &mut mpsc::Receiver<Line>) -> Vec<Line> {
    within(PATIENCE, "channel close", async {
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        lines
    })
    .await
}

/// Live (non-zombie) processes of the group, read from `/proc`.
pub(crate) fn live_members(pgid: u32) -> Vec<u32> {
    let pgid = i32::try_from(pgid).expect("pgid fits i32");
    group::members(pgid)
        .expect("/proc is readable")
        .into_iter()
        .filter(|member| !member.zombie)
        .map(|member| member.pid)
        .collect()
}

/// The group id printed by [`STUBBORN`] as `pgid <n>`.
pub(crate) fn pgid_line(text: &str) -> Option<u32> {
    text.strip_prefix("pgid ")?.parse().ok()
}
