//! Signals to a handler's process group (the handler is its leader: its pid is the group id), and
//! the sweep of the descendants that left it.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Sends `signal` to the process group `pgid` (`None` only checks that the group still has a member).
/// `false` when the group is gone or the id cannot be a group of ours (0, 1, out of range).
pub(crate) fn signal_group(pgid: u32, signal: Option<Signal>) -> bool {
    match i32::try_from(pgid) {
        Ok(p) if p > 1 => killpg(Pid::from_raw(p), signal).is_ok(),
        _ => false,
    }
}

/// Whether any process of the group is still alive.
pub(crate) fn group_alive(pgid: u32) -> bool {
    signal_group(pgid, None)
}

/// The variable that marks every process of one launch: a descendant inherits it (unless it clears
/// its environment), so the processes that left the handler's group (`setsid`, a double fork, a
/// daemon) can still be found and killed when the operation ends.
pub(crate) const MARK_VAR: &str = "POP_PROCESS_MARK";

/// SIGKILLs every process this user may read whose environment holds `POP_PROCESS_MARK=<mark>`,
/// other than this one; repeats (at most 5 rounds) while it finds some, for those forked meanwhile.
/// Returns how many it signalled. Linux (`/proc/<pid>/environ`); elsewhere it finds none.
pub(crate) fn kill_marked(mark: &str) -> usize {
    let entry = format!("{MARK_VAR}={mark}");
    let me = std::process::id();
    let mut killed = 0;
    for _ in 0..5 {
        let Ok(dir) = std::fs::read_dir("/proc") else { return killed };
        let found: Vec<i32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me)
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == entry.as_bytes()))
            })
            .filter_map(|pid| i32::try_from(pid).ok())
            .collect();
        if found.is_empty() {
            break;
        }
        for pid in found {
            if nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_our_groups_are_refused() {
        assert!(!signal_group(0, None));
        assert!(!signal_group(1, Some(Signal::SIGTERM)), "never signal init's group");
        assert!(!signal_group(u32::MAX, None));
    }
}
