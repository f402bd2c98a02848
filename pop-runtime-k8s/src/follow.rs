//! Following one Pod to its end with a watch (never polling): scheduling timeout, log streaming with
//! the handler protocol, log-silence timeout, the original's annotations, external deletion, cancel,
//! and deletion when finished.

use crate::annotations::{self, Conclusion, REPORT_PAYLOAD, REPORT_PROGRESS};
use crate::config::RetryPolicy;
use crate::retry::with_retry;
use futures_util::StreamExt;
use futures_util::io::AsyncReadExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, LogParams};
use kube::runtime::watcher::{self, Event};
use pop_core::model::DiagnosticEvent;
use pop_core::runtime::{Exit, LogStream, RuntimeEvent};
use pop_handler_protocol::framing::{Frame, LineFramer};
use pop_handler_protocol::{LogTail, OutputLimits, OutputParser};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;

/// Everything the follower needs about one launched Pod.
pub(crate) struct Follow {
    pub api: Api<Pod>,
    pub name: String,
    pub handle: String,
    pub scheduling_timeout: Duration,
    pub silence_timeout: Duration,
    pub reap: bool,
    /// Bounds on the log's lines and results, and the tail kept for a failure's diagnostic.
    pub limits: OutputLimits,
    pub drain_timeout: Duration,
    pub retry: RetryPolicy,
    /// Becomes `true` when the operation is cancelled (the canceller deletes the Pod).
    pub cancel: watch::Receiver<bool>,
    pub events: mpsc::Sender<RuntimeEvent>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the log reader passes on, in order, each once (after reconnections).
enum LogMsg {
    /// A whole line, without its timestamp.
    Line(String),
    /// A line over the bound: its first bytes, without the timestamp.
    TooLong(Vec<u8>),
}

/// How the watch loop ended.
enum End {
    Finished(Box<Pod>),
    Deleted(Option<Box<Pod>>),
    Cancelled,
    SchedulingTimeout(String),
    Silence,
    WatchLost(String),
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

impl Follow {
    async fn emit(&self, event: RuntimeEvent) {
        // A receiver that went away does not stop the follower: the Pod is still followed to its end
        // and reaped.
        let _ = self.events.send(event).await;
    }

    /// Follows the Pod; always emits exactly one `Exited` last.
    pub(crate) async fn run(mut self) {
        let exit = self.follow().await;
        self.emit(RuntimeEvent::Exited(exit)).await;
    }

    async fn follow(&mut self) -> Exit {
        let (watch_tx, mut watch_rx) = mpsc::channel(64);
        let _watch_task = AbortOnDrop(tokio::spawn(
            watch_pod(self.api.clone(), self.name.clone(), self.retry, watch_tx).in_current_span(),
        ));
        let (log_tx, mut log_rx) = mpsc::channel::<LogMsg>(256);
        let (finished_tx, finished_rx) = watch::channel(false);
        let mut log_task: Option<AbortOnDrop> = None;
        let mut log_tx = Some(log_tx);

        let launched = Instant::now();
        let mut started = false;
        let mut last_log = Instant::now();
        let mut output = OutputParser::new(self.limits);
        let mut last_pod: Option<Pod> = None;
        let mut last_progress_annotation: Option<String> = None;
        let mut watch_errors_since: Option<Instant> = None;
        let mut seen_in_init = false;

        let end = loop {
            let scheduling_deadline = launched + self.scheduling_timeout;
            let silence_deadline = last_log + self.silence_timeout;
            tokio::select! {
                biased;
                changed = self.cancel.changed() => {
                    if changed.is_err() || *self.cancel.borrow() {
                        break End::Cancelled;
                    }
                }
                msg = watch_rx.recv() => {
                    let Some(msg) = msg else { break End::WatchLost("the watch ended".into()) };
                    let event = match msg {
                        Ok(event) => {
                            // The watcher announces every (re)list with `Init`, even one that then
                            // fails: only an answer from the API counts as recovery.
                            if !matches!(event, Event::Init) {
                                watch_errors_since = None;
                            }
                            event
                        }
                        Err(e) => {
                            let since = *watch_errors_since.get_or_insert_with(Instant::now);
                            tracing::warn!(pod = %self.handle, error = %e, "watch of pod failed; retrying");
                            if since.elapsed() >= self.retry.watch_error_budget {
                                break End::WatchLost(e);
                            }
                            continue;
                        }
                    };
                    let pod = match event {
                        Event::Init => {
                            seen_in_init = false;
                            continue;
                        }
                        Event::InitDone => {
                            if !seen_in_init {
                                break End::Deleted(last_pod.take().map(Box::new));
                            }
                            continue;
                        }
                        Event::Delete(pod) => break End::Deleted(Some(Box::new(pod))),
                        Event::InitApply(pod) => {
                            seen_in_init = true;
                            pod
                        }
                        Event::Apply(pod) => pod,
                    };
                    if let Some(ann) = annotation(&pod, REPORT_PROGRESS)
                        && last_progress_annotation.as_deref() != Some(ann.as_str())
                    {
                        match annotations::progress(&ann) {
                            Ok((update, _)) => self.emit(RuntimeEvent::Progress(update)).await,
                            Err(e) => tracing::warn!(pod = %self.handle, "ignored an unreadable {REPORT_PROGRESS} annotation: {e}"),
                        }
                        last_progress_annotation = Some(ann);
                    }
                    let phase = phase(&pod);
                    let running_or_done = matches!(phase.as_str(), "Running" | "Succeeded" | "Failed");
                    if running_or_done && !started {
                        started = true;
                        last_log = Instant::now();
                        self.emit(RuntimeEvent::Started).await;
                        if let Some(tx) = log_tx.take() {
                            log_task = Some(AbortOnDrop(tokio::spawn(
                                follow_logs(
                                    self.api.clone(),
                                    self.name.clone(),
                                    self.retry,
                                    self.limits.max_line_bytes,
                                    tx,
                                    finished_rx.clone(),
                                )
                                .in_current_span(),
                            )));
                        }
                    }
                    if matches!(phase.as_str(), "Succeeded" | "Failed") {
                        break End::Finished(Box::new(pod));
                    }
                    last_pod = Some(pod);
                }
                msg = log_rx.recv(), if log_task.is_some() => {
                    match msg {
                        Some(msg) => {
                            last_log = Instant::now();
                            self.record(&mut output, msg).await;
                        }
                        None => log_task = None,
                    }
                }
                _ = sleep_until(scheduling_deadline), if !started => {
                    break End::SchedulingTimeout(pending_reason(last_pod.as_ref()));
                }
                _ = sleep_until(silence_deadline), if started => break End::Silence,
            }
        };

        match end {
            End::Finished(pod) => {
                // The log follow ends when the container ends; give it a bounded time to deliver the rest.
                let _ = finished_tx.send(true);
                if log_task.is_some() {
                    let drain = tokio::time::sleep(self.drain_timeout);
                    tokio::pin!(drain);
                    loop {
                        tokio::select! {
                            msg = log_rx.recv() => match msg {
                                Some(msg) => self.record(&mut output, msg).await,
                                None => break,
                            },
                            _ = &mut drain => {
                                tracing::warn!(pod = %self.handle, "log stream did not end within the drain timeout");
                                break;
                            }
                        }
                    }
                }
                drop(log_task);
                let exit = self.finished_exit(&pod, &output, last_progress_annotation.as_deref()).await;
                if self.reap {
                    self.delete("delete finished pod").await;
                }
                exit
            }
            End::Deleted(pod) => {
                let mut reason = format!("pod {} was deleted by someone else before it finished", self.handle);
                if let Some(detail) = pod.as_deref().and_then(status_reason) {
                    reason.push_str(&format!(" ({detail})"));
                }
                failure(reason, output.tail())
            }
            End::Cancelled => Exit::failure(format!("cancelled: pod {} deleted", self.handle)),
            End::SchedulingTimeout(why) => {
                self.delete("delete unscheduled pod").await;
                failure(
                    format!(
                        "pod {} was not running after {} ms (podScheduledTimeoutMs): {why}",
                        self.handle,
                        self.scheduling_timeout.as_millis()
                    ),
                    output.tail(),
                )
            }
            End::Silence => {
                self.delete("delete silent pod").await;
                // The original tolerated a timeout once the handler had reported COMPLETE.
                if let Some(exit) = self.annotated_exit(last_progress_annotation.as_deref(), last_pod.as_ref()).await {
                    return exit;
                }
                failure(
                    format!(
                        "pod {} wrote no log line for {} ms (podStdoutTimeout); deleted it",
                        self.handle,
                        self.silence_timeout.as_millis()
                    ),
                    output.tail(),
                )
            }
            End::WatchLost(e) => {
                self.delete("delete pod after losing its watch").await;
                failure(
                    format!(
                        "lost the watch of pod {} for more than {} ms: {e}; deleted it",
                        self.handle,
                        self.retry.watch_error_budget.as_millis()
                    ),
                    output.tail(),
                )
            }
        }
    }

    /// One message of the log reader, through the handler protocol's output parser.
    async fn record(&self, output: &mut OutputParser, msg: LogMsg) {
        let event = match msg {
            LogMsg::Line(line) => {
                let parsed = output.line(LogStream::Stdout, line);
                if let Some(warning) = parsed.warning {
                    tracing::warn!(pod = %self.handle, "ignored a {warning}");
                }
                parsed.event
            }
            LogMsg::TooLong(start) => RuntimeEvent::Log(LogStream::Stdout, output.too_long(LogStream::Stdout, &start)),
        };
        self.emit(event).await;
    }

    /// The outcome the handler declared in `pop.report.progress` (COMPLETE), with the result from
    /// `pop.report.payload` emitted first; `None` if it declared none.
    async fn annotated_exit(&self, progress: Option<&str>, pod: Option<&Pod>) -> Option<Exit> {
        let (update, conclusion) = match annotations::progress(progress?) {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(pod = %self.handle, "ignored an unreadable {REPORT_PROGRESS} annotation: {e}");
                return None;
            }
        };
        let conclusion = conclusion?;
        if let Some(out) = pod.and_then(|p| annotation(p, REPORT_PAYLOAD)) {
            self.emit_payload(&out).await;
        }
        Some(match conclusion {
            Conclusion::Succeeded => Exit::success(),
            Conclusion::Failed(message) => Exit {
                success: false,
                message: format!("handler in pod {} reported {message}", self.handle),
                diagnostic: update.diagnostic_events.last().cloned(),
                ..Exit::default()
            },
        })
    }

    async fn emit_payload(&self, raw: &str) {
        match annotations::payload(raw) {
            Ok(v) => self.emit(RuntimeEvent::Output(v)).await,
            Err(e) => {
                self.emit(RuntimeEvent::Log(
                    LogStream::Stderr,
                    format!("unreadable {REPORT_PAYLOAD} annotation on pod {} ({e})", self.handle),
                ))
                .await
            }
        }
    }

    async fn finished_exit(&self, pod: &Pod, output: &OutputParser, seen_progress: Option<&str>) -> Exit {
        let progress = annotation(pod, REPORT_PROGRESS);
        if let Some(p) = &progress
            && seen_progress != Some(p.as_str())
            && let Ok((update, _)) = annotations::progress(p)
        {
            self.emit(RuntimeEvent::Progress(update)).await;
        }
        let (code, reason) = terminated(pod);
        // Decision (documented in the crate docs): a handler's COMPLETE progress annotation decides the
        // outcome, as in the original; otherwise the Pod's phase does.
        if let Some(mut exit) = self.annotated_exit(progress.as_deref(), Some(pod)).await {
            exit.code = exit.code.or(code);
            return exit;
        }
        if let Some(out) = annotation(pod, REPORT_PAYLOAD) {
            self.emit_payload(&out).await;
        }
        // As for a local process, a broken output rule fails the operation whatever the exit status.
        if let Some(violation) = output.violation() {
            let how = match code {
                Some(c) => format!("exit code {c}"),
                None => format!("phase {}", phase(pod)),
            };
            let mut exit =
                failure(format!("pod {}: {violation} (its container ended with {how})", self.handle), output.tail());
            exit.code = code;
            return exit;
        }
        if phase(pod) == "Succeeded" {
            return Exit { code: code.or(Some(0)), ..Exit::success() };
        }
        let mut message = format!("Kubernetes pod failed: {}", self.handle);
        match (code, &reason) {
            (Some(c), Some(r)) => message.push_str(&format!(" (exit code {c}, {r})")),
            (Some(c), None) => message.push_str(&format!(" (exit code {c})")),
            (None, Some(r)) => message.push_str(&format!(" ({r})")),
            (None, None) => {}
        }
        // A graceful deletion by someone else stops the container first (SIGTERM → Failed): say so.
        if let Some(at) = &pod.metadata.deletion_timestamp {
            message.push_str(&format!(
                "; it was deleted by someone else before it finished (deletion requested at {})",
                at.0
            ));
        }
        let mut exit = failure(message, output.tail());
        exit.code = code;
        exit
    }

    async fn delete(&self, action: &str) {
        let action = format!("{action} {}", self.handle);
        let result = with_retry(&self.retry, &action, |_| async {
            match self.api.delete(&self.name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(pod = %self.handle, error = %e, "could not delete pod; the pod reaper will");
        }
    }
}

/// A failure whose diagnostic carries the last log lines.
fn failure(message: String, tail: &LogTail) -> Exit {
    let diagnostic = DiagnosticEvent::new(message.clone(), now_ms()).with_payload(tail.to_json_lines());
    Exit { success: false, message, diagnostic: Some(diagnostic), ..Exit::default() }
}

fn annotation(pod: &Pod, key: &str) -> Option<String> {
    pod.metadata.annotations.as_ref()?.get(key).cloned()
}

fn phase(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default()
}

/// The first container's exit code and reason, when it terminated.
fn terminated(pod: &Pod) -> (Option<i32>, Option<String>) {
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    match state {
        Some(t) => (Some(t.exit_code), t.reason.clone().or_else(|| t.message.clone())),
        None => (None, pod.status.as_ref().and_then(|s| s.reason.clone())),
    }
}

/// Why a Pod is not running yet: the `PodScheduled=False` condition, or a waiting container.
fn pending_reason(pod: Option<&Pod>) -> String {
    let Some(status) = pod.and_then(|p| p.status.as_ref()) else {
        return "the pod was never reported by the API".into();
    };
    if let Some(c) = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False") {
        let reason = c.reason.clone().unwrap_or_else(|| "not scheduled".into());
        return match &c.message {
            Some(m) => format!("{reason}: {m}"),
            None => reason,
        };
    }
    if let Some(w) =
        status.container_statuses.iter().flatten().filter_map(|c| c.state.as_ref()?.waiting.as_ref()).next()
    {
        let reason = w.reason.clone().unwrap_or_else(|| "waiting".into());
        return match &w.message {
            Some(m) => format!("container waiting: {reason}: {m}"),
            None => format!("container waiting: {reason}"),
        };
    }
    format!("still {}", status.phase.clone().unwrap_or_else(|| "Pending".into()))
}

/// What the Pod's status says about why it went away (eviction, preemption, node loss).
fn status_reason(pod: &Pod) -> Option<String> {
    let s = pod.status.as_ref()?;
    match (&s.reason, &s.message) {
        (Some(r), Some(m)) => Some(format!("{r}: {m}")),
        (Some(r), None) => Some(r.clone()),
        (None, Some(m)) => Some(m.clone()),
        (None, None) => pod.metadata.deletion_timestamp.as_ref().map(|t| format!("deletion requested at {}", t.0)),
    }
}

/// Forwards the watch of one Pod, backing off after errors (the follower bounds how long they may last).
async fn watch_pod(api: Api<Pod>, name: String, retry: RetryPolicy, tx: mpsc::Sender<Result<Event<Pod>, String>>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(api, config);
    futures_util::pin_mut!(stream);
    let mut failures = 0;
    while let Some(item) = stream.next().await {
        let failed = item.is_err();
        if tx.send(item.map_err(|e| e.to_string())).await.is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(retry.delay(failures)).await;
            failures += 1;
        } else {
            failures = 0;
        }
    }
}

/// Room for the timestamp the API puts before each log line (`2024-01-02T03:04:05.123456789Z `).
const TIMESTAMP_ROOM: usize = 64;

/// Which log lines were passed on already, by timestamp: a reconnection asks from the second of the
/// last line seen and skips what it gets again (lines sharing a timestamp are counted).
#[derive(Default)]
struct Seen {
    last_ts: Option<Timestamp>,
    /// Lines passed on with `last_ts`.
    at_last_ts: usize,
    /// Lines with `last_ts` read on the current connection.
    seen_at_last: usize,
}

impl Seen {
    fn reconnected(&mut self) {
        self.seen_at_last = 0;
    }

    /// Whether a line with this timestamp is new.
    fn fresh(&mut self, ts: Option<Timestamp>) -> bool {
        match (ts, self.last_ts) {
            (Some(t), Some(l)) if t < l => false,
            (Some(t), Some(l)) if t == l => {
                self.seen_at_last += 1;
                if self.seen_at_last <= self.at_last_ts {
                    return false;
                }
                self.at_last_ts += 1;
                true
            }
            (Some(t), _) => {
                self.last_ts = Some(t);
                self.at_last_ts = 1;
                self.seen_at_last = 1;
                true
            }
            (None, _) => true,
        }
    }
}

/// Streams the Pod's log with timestamps, reconnecting (from the last timestamp, without repeating
/// lines) until the Pod has finished; then one last pass without `follow` picks up the rest. Lines are
/// cut by the protocol's bounded framer: a line over `max_line_bytes` is passed on as its start only.
async fn follow_logs(
    api: Api<Pod>,
    name: String,
    retry: RetryPolicy,
    max_line_bytes: usize,
    tx: mpsc::Sender<LogMsg>,
    finished: watch::Receiver<bool>,
) {
    let mut seen = Seen::default();
    let mut failures = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    let mut frames = Vec::new();
    loop {
        let finished_at_open = *finished.borrow();
        // The API takes whole seconds (and kube rounds to the nearest one): ask from the second the last
        // line was written in, floored, and skip what was already seen.
        let since_time = seen.last_ts.and_then(|t| Timestamp::from_second(t.as_second()).ok());
        let params = LogParams { follow: !finished_at_open, timestamps: true, since_time, ..LogParams::default() };
        let opened = match api.log_stream(&name, &params).await {
            Ok(reader) => {
                failures = 0;
                seen.reconnected();
                futures_util::pin_mut!(reader);
                let mut framer = LineFramer::new(max_line_bytes.saturating_add(TIMESTAMP_ROOM));
                loop {
                    let ended = match reader.read(&mut buf).await {
                        Ok(0) => {
                            // A last line without a newline is whole only once the container has ended;
                            // while following, it comes again after the reconnection.
                            if finished_at_open {
                                framer.finish(&mut frames);
                            }
                            true
                        }
                        Ok(n) => {
                            framer.push(&buf[..n], &mut frames);
                            false
                        }
                        Err(e) => {
                            tracing::debug!(pod = %name, error = %e, "log stream broke; reconnecting");
                            true
                        }
                    };
                    for frame in frames.drain(..) {
                        let msg = match frame {
                            Frame::Line(raw) => {
                                let (ts, text) = split_timestamp(&raw);
                                if !seen.fresh(ts) {
                                    continue;
                                }
                                LogMsg::Line(text.to_string())
                            }
                            Frame::TooLong(start) => {
                                let raw = String::from_utf8_lossy(&start);
                                let (ts, text) = split_timestamp(&raw);
                                if !seen.fresh(ts) {
                                    continue;
                                }
                                LogMsg::TooLong(text.as_bytes().to_vec())
                            }
                        };
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    if ended {
                        break;
                    }
                }
                true
            }
            Err(e) => {
                failures += 1;
                tracing::debug!(pod = %name, error = %e, "could not open the log stream; retrying");
                if failures >= retry.attempts.max(1) && finished_at_open {
                    tracing::warn!(pod = %name, error = %e, "gave up reading the rest of the log");
                    return;
                }
                false
            }
        };
        if finished_at_open && opened {
            return;
        }
        let delay = retry.delay(failures.saturating_sub(1)).min(Duration::from_secs(2));
        if *finished.borrow() && !opened {
            tokio::time::sleep(delay).await;
        } else if !*finished.borrow() {
            let mut finished = finished.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = finished.changed() => {}
            }
        }
    }
}

/// Splits `2024-01-01T00:00:00.123456789Z text` into its timestamp and text.
fn split_timestamp(raw: &str) -> (Option<Timestamp>, &str) {
    match raw.split_once(' ') {
        Some((ts, rest)) => match ts.parse::<Timestamp>() {
            Ok(t) => (Some(t), rest),
            Err(_) => (None, raw),
        },
        None => match raw.parse::<Timestamp>() {
            Ok(t) => (Some(t), ""),
            Err(_) => (None, raw),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_split_from_lines() {
        let (t, text) = split_timestamp("2024-01-02T03:04:05.123456789Z POP_RESULT {}");
        assert!(t.is_some());
        assert_eq!(text, "POP_RESULT {}");
        let (t, text) = split_timestamp("no timestamp here");
        assert!(t.is_none());
        assert_eq!(text, "no timestamp here");
        let (t, text) = split_timestamp("2024-01-02T03:04:05Z");
        assert!(t.is_some());
        assert_eq!(text, "");
    }

    #[test]
    fn pending_reasons_name_the_condition() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
        }))
        .unwrap();
        assert_eq!(pending_reason(Some(&pod)), "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "status": {"phase": "Pending", "containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        }))
        .unwrap();
        assert_eq!(pending_reason(Some(&pod)), "container waiting: ImagePullBackOff");
        assert_eq!(pending_reason(None), "the pod was never reported by the API");
    }
}
