//! Signals to a handler's process group (the handler is its leader: its pid is the group id).

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
