//! The delivery loop: one alert at a time into the sink, with bounded exponential backoff; what cannot
//! be delivered goes to the dead-letter file.

use super::{AlertMessage, AlertRunner};
use crate::signals::Signals;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A line of the dead-letter file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetter<'a> {
    /// When it was given up, epoch ms.
    failed_at: i64,
    /// Attempts made.
    attempts: u32,
    /// The last attempt's error.
    error: &'a str,
    /// The alert as it would have been delivered.
    alert: &'a AlertMessage,
}

/// How long pending alerts get at shutdown (one attempt each, no retry) before the rest are
/// dead-lettered.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(5);

/// Drains the channel until the signals shut down; then makes one attempt for each alert still
/// pending (within [`SHUTDOWN_BUDGET`]) and dead-letters the rest.
pub(crate) async fn deliver_loop(mut runner: AlertRunner, signals: Arc<Signals>, now: impl Fn() -> i64 + Send) {
    loop {
        let message = tokio::select! {
            _ = signals.shutdown.cancelled() => break,
            m = runner.rx.recv() => match m { Some(m) => m, None => return },
        };
        let mut attempt = 1;
        loop {
            let error = match runner.sink.deliver(&message).await {
                Ok(()) => {
                    sent(&runner, &message);
                    break;
                }
                Err(e) => e,
            };
            if attempt >= runner.config.attempts.max(1) {
                dead_letter(&runner, &message, attempt, &error, now());
                break;
            }
            runner.stats.retried.fetch_add(1, Ordering::Relaxed);
            let wait = runner.config.wait_after(attempt);
            tracing::debug!(kind = message.alert.kind(), attempt, error, ?wait, "alert delivery failed; retrying");
            tokio::select! {
                _ = signals.shutdown.cancelled() => {
                    dead_letter(&runner, &message, attempt, &format!("{error} (then the instance shut down)"), now());
                    break;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
        }
    }
    let start = Instant::now();
    runner.rx.close();
    while let Some(message) = runner.rx.recv().await {
        let left = SHUTDOWN_BUDGET.saturating_sub(start.elapsed());
        let result = match tokio::time::timeout(left, runner.sink.deliver(&message)).await {
            Ok(r) => r,
            Err(_) => Err("not delivered: the instance shut down".to_owned()),
        };
        match result {
            Ok(()) => sent(&runner, &message),
            Err(e) => dead_letter(&runner, &message, 1, &e, now()),
        }
    }
}

fn sent(runner: &AlertRunner, message: &AlertMessage) {
    runner.stats.sent.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("pop_alerts_sent_total", "kind" => message.alert.kind()).increment(1);
}

/// Gives an alert up: appends it to the dead-letter file (or logs it when there is none or the file
/// cannot be written).
fn dead_letter(runner: &AlertRunner, message: &AlertMessage, attempts: u32, error: &str, now: i64) {
    runner.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("pop_alerts_failed_total", "kind" => message.alert.kind()).increment(1);
    let line = DeadLetter { failed_at: now, attempts, error, alert: message };
    let Some(path) = &runner.config.dead_letter else {
        tracing::error!(kind = message.alert.kind(), text = %message.text, error, attempts, "alert not delivered (no dead-letter file)");
        return;
    };
    let written = serde_json::to_string(&line).map_err(std::io::Error::other).and_then(|mut json| {
        json.push('\n');
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(json.as_bytes())
    });
    match written {
        Ok(()) => {
            tracing::error!(kind = message.alert.kind(), error, attempts, file = %path.display(), "alert not delivered; dead-lettered")
        }
        Err(e) => tracing::error!(
            kind = message.alert.kind(), text = %message.text, error, attempts, file = %path.display(), write_error = %e,
            "alert not delivered, and the dead-letter file could not be written"
        ),
    }
}
