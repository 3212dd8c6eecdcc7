//! The per-repository mirror cache under `<root>/cache/git/`, so a second queue of the same
//! repository fetches what is new instead of cloning from scratch.
//!
//! One async lock per mirror: two queues of the same repository never run git in the same
//! mirror at once (git's own lock files would make one of them fail), and retention removes a
//! mirror only while it holds its lock.
//!
//! A mirror's last use is its directory's modification time: the checkout sets it after every
//! fetch or clone (git alone does not change it when nothing is new), and retention removes
//! mirrors not used for `[retention] max_age`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Clone)]
pub struct Mirrors {
    dir: PathBuf,
    // std::sync::Mutex: only to look up or insert the per-mirror lock, never held across an await.
    locks: Arc<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Mirrors {
    pub fn new(root: &Path) -> Mirrors {
        Mirrors {
            dir: crate::layout::Layout::new(root).mirrors(),
            locks: Arc::default(),
        }
    }

    /// Where the mirror of `repo` lives: a readable name plus a hash of the whole location.
    pub fn path_for(&self, repo: &str) -> PathBuf {
        let tail: String = repo
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("repo")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.dir
            .join(format!("{tail}-{:016x}.git", fnv1a(repo.as_bytes())))
    }

    /// The directory every mirror is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock_of(&self, path: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("mirror locks")
            .entry(path.to_owned())
            .or_default()
            .clone()
    }

    /// Waits for exclusive use of the mirror at `path`.
    pub async fn lock(&self, path: &Path) -> OwnedMutexGuard<()> {
        self.lock_of(path).lock_owned().await
    }

    /// Exclusive use of the mirror at `path` if nobody uses it now.
    pub fn try_lock(&self, path: &Path) -> Option<OwnedMutexGuard<()>> {
        self.lock_of(path).try_lock_owned().ok()
    }
}

/// Records a use of the mirror at `path` (its directory's modification time, now).
pub fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.set_modified(std::time::SystemTime::now())
}

/// The mirror an entry of the mirror directory belongs to: `x.git` itself, or `x.partial` (a
/// clone under way, or one a crash left) of `x.git`; `None` for anything else.
pub fn mirror_of(entry: &Path) -> Option<PathBuf> {
    match entry.extension()?.to_str()? {
        "git" => Some(entry.to_owned()),
        "partial" => Some(entry.with_extension("git")),
        _ => None,
    }
}

/// FNV-1a, 64 bit: a stable name for a repository location (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_paths_are_stable_and_distinct() {
        let m = Mirrors::new(Path::new("/r"));
        let a = m.path_for("https://example.org/team/firmware.git");
        assert_eq!(a, m.path_for("https://example.org/team/firmware.git"));
        assert!(a.starts_with("/r/cache/git"));
        assert!(
            a.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("firmware-")
        );
        assert_ne!(a, m.path_for("https://example.org/other/firmware.git"));
        assert_eq!(mirror_of(&a), Some(a.clone()));
        assert_eq!(mirror_of(&a.with_extension("partial")), Some(a.clone()));
        assert_eq!(mirror_of(Path::new("/r/cache/git/notes.txt")), None);
        let odd = m.path_for("/srv/../weird name");
        assert!(odd.starts_with("/r/cache/git"), "{odd:?}");
        assert!(!odd.file_name().unwrap().to_str().unwrap().contains(' '));
    }
}
