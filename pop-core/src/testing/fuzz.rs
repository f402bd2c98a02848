//! A bound for fuzz cases: [`bounded`] runs one case, catching a panic, under a watchdog thread that
//! ends the process (exit 101, naming the input) when a case runs past [`CASE_LIMIT`] — a hang cannot
//! be interrupted, so the run must end to be reported.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// The most one case may take before it counts as a hang.
pub const CASE_LIMIT: Duration = Duration::from_secs(20);

/// The cases running now: thread → (start, input).
type Running = Mutex<HashMap<ThreadId, (Instant, String)>>;

fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let map = running().lock().unwrap_or_else(|p| p.into_inner());
                if let Some((_, (_, input))) = map.iter().find(|(_, (at, _))| at.elapsed() > CASE_LIMIT) {
                    eprintln!("fuzz: hang (a case ran over {CASE_LIMIT:?}) on input {input}");
                    std::process::exit(101);
                }
            }
        });
        Running::default()
    })
}

/// Runs one case under the watchdog, catching a panic (like `catch_unwind`).
pub fn bounded<T>(input: &dyn std::fmt::Debug, f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let me = std::thread::current().id();
    running().lock().unwrap_or_else(|p| p.into_inner()).insert(me, (Instant::now(), format!("{input:?}")));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    running().lock().unwrap_or_else(|p| p.into_inner()).remove(&me);
    out
}
