//! The soak: mixed load on an embedded instance, sampling RSS, open file descriptors and the sled
//! directory's size each interval, then printing the slopes.
//!
//! `cargo run --release -p pop-examples --example soak -- --minutes 30 [--sample-secs 60] [--rate 20] [--reap-secs 60]`

use pop_examples::soak::{SoakConfig, run};
use std::time::Duration;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = SoakConfig {
        duration: Duration::from_secs_f64(arg("--minutes", 30.0) * 60.0),
        sample_every: Duration::from_secs_f64(arg("--sample-secs", 60.0)),
        reap_age: Duration::from_secs_f64(arg("--reap-secs", 60.0)),
        rate: arg("--rate", 20.0) as u32,
    };
    let tmp = tempfile::tempdir()?;
    println!("POP soak: {config:?} in {}", tmp.path().display());
    let report = run(tmp.path(), config).await?;
    if report.errors > 0 {
        eprintln!("{} errors", report.errors);
        std::process::exit(1);
    }
    Ok(())
}
