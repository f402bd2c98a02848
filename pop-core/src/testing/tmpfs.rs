//! A small tmpfs mounted for a test (a real full disk), unmounted when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a directory; lazily unmounted (`umount -l`) when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it: `6m`) at `at`, creating the
    /// directory. `None` when `mount` is not allowed (not root): the caller skips and says so.
    pub fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self { at: at.to_owned() })
    }

    /// Grows (or shrinks) the mounted tmpfs to `size`: space returns. Whether it worked.
    pub fn resize(&self, size: &str) -> bool {
        resize(&self.at, size)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.at
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Resizes the tmpfs mounted at `at` (mounted by another process, e.g. a test's parent) to `size`.
/// Whether it worked.
pub fn resize(at: &Path, size: &str) -> bool {
    Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(at).status().is_ok_and(|s| s.success())
}
