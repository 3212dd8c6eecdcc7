//! Process groups: signalling a group, finding its live members in `/proc`, waiting for it to
//! empty, and the optional child subreaper that lets this process reap orphaned grandchildren.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

/// Interval between two looks at a group that is not empty yet.
const POLL: Duration = Duration::from_millis(10);

/// Sends `signal` to every process of the group `pgid`. A group that no longer exists is fine.
pub(crate) fn signal(pgid: i32, signal: libc::c_int) {
    // SAFETY: killpg only reads its two integer arguments.
    if unsafe { libc::killpg(pgid, signal) } != 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, signal, %error, "signalling process group failed");
        }
    }
}

/// Whether the group `pgid` still has a process that is not a zombie.
///
/// Zombies count as gone: they run no code and hold no pipe. Zombies of the group that were
/// reparented to this process (see [`become_subreaper`]) are reaped on the way; `leader` (still
/// owned by the runtime, which reaps it) is never touched.
pub(crate) fn alive(pgid: i32, leader: u32) -> bool {
    // SAFETY: killpg with signal 0 only checks for existence and permission.
    if unsafe { libc::killpg(pgid, 0) } != 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return false;
    }
    match members(pgid) {
        Ok(members) => {
            let me = std::process::id();
            let mut alive = false;
            for member in members {
                if !member.zombie {
                    alive = true;
                } else if member.ppid == me && member.pid != leader {
                    reap(member.pid);
                }
            }
            alive
        }
        // Without /proc, trust killpg: the group has a member.
        Err(_) => true,
    }
}

/// Waits until the group has no live process, or until `deadline`; returns whether it emptied.
pub(crate) async fn wait_empty(pgid: i32, leader: u32, deadline: Instant) -> bool {
    loop {
        if !alive(pgid, leader) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep_until((now + POLL).min(deadline)).await;
    }
}

/// A process found in `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    pub(crate) zombie: bool,
}

/// All processes whose process group is `pgid`, zombies included.
pub(crate) fn members(pgid: i32) -> io::Result<Vec<Member>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // The process may exit between read_dir and read: then it is simply not a member.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((member, group)) = parse_stat(pid, &stat)
            && group == pgid
        {
            found.push(member);
        }
    }
    Ok(found)
}

/// Parses `/proc/PID/stat`: `pid (comm) state ppid pgrp ...`; comm may contain anything,
/// so the fields are counted from the last `)`.
fn parse_stat(pid: u32, stat: &str) -> Option<(Member, i32)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let zombie = matches!(state, "Z" | "X" | "x");
    Some((Member { pid, ppid, zombie }, pgrp))
}

/// Reaps one zombie child that the runtime does not own (an orphan reparented to us).
fn reap(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let mut status = 0;
    // SAFETY: waitpid on one specific pid with WNOHANG; `status` is a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// Makes this process the child subreaper: orphaned grandchildren are reparented to it instead
/// of to init, so their zombies can be reaped when their group is cleaned up. Call once at
/// start-up; optional (without it, init reaps orphans).
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        let check = |stat: &str, expected: Option<(Member, i32)>| {
            assert_eq!(parse_stat(42, stat), expected, "{stat}");
        };
        let member = |ppid, zombie| Member {
            pid: 42,
            ppid,
            zombie,
        };
        check("42 (sh) S 7 42 42 0 -1", Some((member(7, false), 42)));
        check("42 (a) b (c)) Z 1 40 40 0", Some((member(1, true), 40)));
        check("42 (qemu-system-xt) R 9 9 9", Some((member(9, false), 9)));
        check("42 (sh) S", None);
        check("garbage", None);
    }

    #[test]
    fn own_group_is_listed_and_alive() {
        // SAFETY: getpgrp has no arguments and cannot fail.
        let pgid = unsafe { libc::getpgrp() };
        let me = std::process::id();
        let members = members(pgid).expect("/proc");
        assert!(
            members.iter().any(|m| m.pid == me && !m.zombie),
            "{members:?}"
        );
        assert!(alive(pgid, 0));
    }
}
