//! Free space on the data root: below `[worker] min_free_space` no queue starts (it would only
//! fail writing its checkout, build, log or reports); the queues wait and say why.

use std::path::Path;

use crate::config::Config;

/// Bytes free on the file system of `path` for an unprivileged writer.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path; `stat` is written by the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on some targets
    let (avail, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    Ok(avail.saturating_mul(size))
}

/// Why queues may not start for lack of space, if they may not.
pub fn too_little(config: &Config) -> Option<String> {
    let min = config.worker.min_free_space;
    if min == 0 {
        return None;
    }
    match free_space(&config.root) {
        Ok(free) if free < min => Some(format!(
            "waiting for free space: {} free on the data root {}, [worker] min_free_space = {}",
            human(free),
            config.root.display(),
            human(min)
        )),
        Ok(_) => None,
        // Not knowing is no reason to stop: the writes will say what is wrong.
        Err(e) => {
            tracing::warn!(root = %config.root.display(), error = %e, "cannot read the free space of the data root");
            None
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_has_some_space_and_a_huge_minimum_is_not_met() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()).unwrap() > 0);
        let mut config = Config::defaults();
        config.root = dir.path().to_owned();
        config.worker.min_free_space = u64::MAX;
        let why = too_little(&config).unwrap();
        assert!(why.contains("[worker] min_free_space"), "{why}");
        config.worker.min_free_space = 0;
        assert_eq!(too_little(&config), None);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(1 << 30), "1.0 GiB");
    }
}
