//! Removing directory trees (finished queues, checkouts, mirrors) and counting what that frees.
//! Blocking: callers run these on a blocking thread.
//!
//! A tree is removed without following a symbolic link (a link is removed, not what it points
//! to), and a directory a build left without write permission is made writable first, so a
//! checkout whose build did `chmod -w` is removed too. What is freed is counted in disk blocks,
//! and only for files with no other hard link (a mirror cloned from a local repository shares
//! its objects with it: removing them frees nothing).

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What removing a tree freed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Freed {
    pub bytes: u64,
}

/// Removes the tree at `path` (nothing there is fine); returns the disk space freed.
pub fn remove_tree(path: &Path) -> io::Result<Freed> {
    let mut freed = Freed::default();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => remove_dir(path, &meta, &mut freed)?,
        Ok(meta) => remove_file(path, &meta, &mut freed)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(freed)
}

fn remove_file(path: &Path, meta: &std::fs::Metadata, freed: &mut Freed) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if meta.nlink() <= 1 {
                freed.bytes += meta.blocks() * 512;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_dir(path: &Path, meta: &std::fs::Metadata, freed: &mut Freed) -> io::Result<()> {
    // Entries can be removed only from a directory we may write and search.
    if meta.permissions().mode() & 0o700 != 0o700 {
        let mut perms = meta.permissions();
        perms.set_mode(perms.mode() | 0o700);
        std::fs::set_permissions(path, perms)?;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let child = entry.path();
        let meta = match std::fs::symlink_metadata(&child) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            remove_dir(&child, &meta, freed)?;
        } else {
            remove_file(&child, &meta, freed)?;
        }
    }
    match std::fs::remove_dir(path) {
        Ok(()) => {
            freed.bytes += meta.blocks() * 512;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves `path` into `trash` as `name`, in one rename; `Ok(None)` when nothing is at `path`.
pub fn move_to_trash(path: &Path, trash: &Path, name: &str) -> io::Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    std::fs::create_dir_all(trash)?;
    let to = trash.join(name);
    match std::fs::rename(path, &to) {
        Ok(()) => Ok(Some(to)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes everything in `trash` (what this pass moved there, and what a crash left);
/// returns the space freed. An entry that cannot be removed is logged and left for later.
pub fn empty(trash: &Path) -> Freed {
    let mut freed = Freed::default();
    let entries = match std::fs::read_dir(trash) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return freed,
        Err(e) => {
            tracing::warn!(dir = %trash.display(), error = %e, "retention: cannot read the trash");
            return freed;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match remove_tree(&path) {
            Ok(f) => freed.bytes += f.bytes,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "retention: cannot remove; tried again at the next pass");
            }
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_goes_with_read_only_dirs_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep.txt"), "precious").unwrap();
        let tree = dir.path().join("tree");
        let locked = tree.join("a/locked");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), vec![7u8; 10_000]).unwrap();
        std::fs::write(tree.join("a/g"), "g").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        std::fs::hard_link(outside.join("keep.txt"), tree.join("a/hard")).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();

        let freed = remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep.txt").is_file(), "links are not followed");
        assert!(freed.bytes >= 10_000, "{freed:?}");
        assert_eq!(
            remove_tree(&tree).unwrap(),
            Freed::default(),
            "gone is fine"
        );
    }

    #[test]
    fn trash_takes_whole_trees_and_empties() {
        let dir = tempfile::tempdir().unwrap();
        let trash = dir.path().join("trash");
        let q = dir.path().join("queues/q1");
        std::fs::create_dir_all(q.join("tasks/t")).unwrap();
        std::fs::write(q.join("queue.log"), "line\n").unwrap();
        let moved = move_to_trash(&q, &trash, "queue-1").unwrap();
        assert_eq!(moved, Some(trash.join("queue-1")));
        assert!(!q.exists());
        assert_eq!(move_to_trash(&q, &trash, "queue-1").unwrap(), None);
        assert!(empty(&trash).bytes > 0);
        assert_eq!(std::fs::read_dir(&trash).unwrap().count(), 0);
        assert_eq!(empty(&dir.path().join("none")), Freed::default());
    }
}
