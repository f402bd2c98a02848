//! An in-process Kubernetes API server speaking the Pods subset POP uses: create, get, delete, list with
//! label and field selectors, watch from a resourceVersion, and the log subresource with follow,
//! timestamps and sinceTime. Tests play the kubelet through its methods (phases, logs, annotations,
//! conditions) and can make requests fail.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

type Body = BoxBody<Bytes, Infallible>;
type Key = (String, String);

#[derive(Default)]
struct LogState {
    lines: Vec<(Timestamp, String)>,
    closed: bool,
    /// Bumped to cut open log streams (a broken connection) without ending the container.
    generation: u64,
}

struct Failure {
    method: Method,
    path_contains: String,
    status: u16,
    remaining: usize,
}

#[derive(Default)]
struct State {
    rv: u64,
    pods: BTreeMap<Key, Value>,
    history: Vec<(u64, &'static str, Value)>,
    logs: HashMap<Key, LogState>,
    failures: Vec<Failure>,
    requests: Vec<String>,
    last_ts: Option<Timestamp>,
}

/// The mock API server; dropped, it stops accepting connections.
#[derive(Clone)]
pub struct MockKube {
    state: Arc<Mutex<State>>,
    changed: Arc<watch::Sender<u64>>,
    pub url: String,
    accept: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for MockKube {
    fn drop(&mut self) {
        if Arc::strong_count(&self.accept) == 1 {
            self.accept.abort();
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    json_response(code, &body)
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(q) = req.uri().query() {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.insert(decode(k), decode(v));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn selector_matches(pod: &Value, labels: Option<&String>, fields: Option<&String>) -> bool {
    if let Some(sel) = labels.filter(|s| !s.is_empty()) {
        for term in sel.split(',') {
            let (k, v) = term.split_once('=').unwrap_or((term, ""));
            if pod["metadata"]["labels"][k].as_str() != Some(v) {
                return false;
            }
        }
    }
    if let Some(sel) = fields.filter(|s| !s.is_empty()) {
        for term in sel.split(',') {
            let (k, v) = term.split_once('=').unwrap_or((term, ""));
            let actual = match k {
                "metadata.name" => pod["metadata"]["name"].as_str(),
                "metadata.namespace" => pod["metadata"]["namespace"].as_str(),
                "status.phase" => pod["status"]["phase"].as_str(),
                _ => None,
            };
            if actual != Some(v) {
                return false;
            }
        }
    }
    true
}

impl MockKube {
    /// Starts the server on 127.0.0.1 with an OS-chosen port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, _) = watch::channel(0u64);
        let changed = Arc::new(tx);
        let handler = Handler { state: Arc::clone(&state), changed: Arc::clone(&changed) };
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { state, changed, url: format!("http://{addr}"), accept: Arc::new(accept) }
    }

    fn clone_inner(&self) -> Handler {
        Handler { state: Arc::clone(&self.state), changed: Arc::clone(&self.changed) }
    }

    /// A kube client pointed at this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("mock url"));
        pop_runtime_k8s::ensure_crypto_provider();
        kube::Client::try_from(config).expect("client for the mock API")
    }

    /// A receiver that changes whenever the mock's state does (pods, logs).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Requests seen so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The next `count` requests with this method whose path and query contain `path_contains` fail
    /// with `status`.
    pub fn fail_next(&self, method: Method, path_contains: &str, status: u16, count: usize) {
        self.state.lock().unwrap().failures.push(Failure {
            method,
            path_contains: path_contains.to_string(),
            status,
            remaining: count,
        });
    }

    /// A pod's current JSON.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.state.lock().unwrap().pods.get(&(ns.to_string(), name.to_string())).cloned()
    }

    /// Every pod's `namespace/name`.
    pub fn pod_handles(&self) -> Vec<String> {
        self.state.lock().unwrap().pods.keys().map(|(ns, n)| format!("{ns}/{n}")).collect()
    }

    /// Waits until a pod exists and returns its namespace and name.
    pub async fn wait_for_pod(&self) -> (String, String) {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((k, _)) = self.state.lock().unwrap().pods.iter().next() {
                return k.clone();
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(deadline) => panic!("no pod was created within 20 s"),
            }
        }
    }

    /// Waits until a request containing `needle` has been received.
    pub async fn wait_for_request(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !self.requests().iter().any(|r| r.contains(needle)) {
            assert!(tokio::time::Instant::now() < deadline, "no request containing {needle:?} within 20 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the pod is gone; `false` after `within`.
    pub async fn wait_gone(&self, ns: &str, name: &str, within: Duration) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.pod(ns, name).is_none() {
                return true;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// Inserts a pod directly (as if created earlier by another worker).
    pub fn insert_pod(&self, pod: Value) {
        assert!(self.clone_inner().create(pod).is_ok(), "insert_pod: the pod already exists");
    }

    fn modify(&self, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        self.clone_inner().modify(ns, name, f)
    }

    /// Sets `PodScheduled=False` with reason Unschedulable.
    pub fn unschedulable(&self, ns: &str, name: &str, message: &str) {
        self.modify(ns, name, |p| {
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": message}]);
        });
    }

    /// The container starts: phase Running.
    pub fn run(&self, ns: &str, name: &str) {
        let now = Timestamp::now().to_string();
        self.modify(ns, name, |p| {
            p["status"]["phase"] = json!("Running");
            p["status"]["startTime"] = json!(now);
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True"}]);
            p["status"]["containerStatuses"] = json!([{"name": "c", "image": "i", "imageID": "", "ready": true,
                "restartCount": 0, "state": {"running": {"startedAt": now}}}]);
        });
    }

    /// The container writes a log line.
    pub fn log(&self, ns: &str, name: &str, line: &str) {
        let mut st = self.state.lock().unwrap();
        let mut ts = Timestamp::now();
        if let Some(last) = st.last_ts
            && ts <= last
        {
            ts = last + k8s_openapi::jiff::SignedDuration::from_nanos(1);
        }
        st.last_ts = Some(ts);
        st.logs.entry((ns.to_string(), name.to_string())).or_default().lines.push((ts, line.to_string()));
        drop(st);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Cuts the pod's open log streams, as a broken connection would; the container goes on.
    pub fn interrupt_logs(&self, ns: &str, name: &str) {
        self.state.lock().unwrap().logs.entry((ns.to_string(), name.to_string())).or_default().generation += 1;
        self.changed.send_modify(|v| *v += 1);
    }

    /// Sets an annotation (as a handler patching its own pod would).
    pub fn annotate(&self, ns: &str, name: &str, key: &str, value: &str) {
        self.modify(ns, name, |p| {
            p["metadata"]["annotations"][key] = json!(value);
        });
    }

    /// The container ends: phase Succeeded (code 0) or Failed; the log stream closes.
    pub fn terminate(&self, ns: &str, name: &str, exit_code: i32) {
        {
            let mut st = self.state.lock().unwrap();
            st.logs.entry((ns.to_string(), name.to_string())).or_default().closed = true;
        }
        let now = Timestamp::now().to_string();
        self.modify(ns, name, |p| {
            p["status"]["phase"] = json!(if exit_code == 0 { "Succeeded" } else { "Failed" });
            p["status"]["containerStatuses"] = json!([{"name": "c", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": exit_code,
                "reason": if exit_code == 0 { "Completed" } else { "Error" }, "finishedAt": now}}}]);
        });
    }

    /// Someone else asks for a graceful deletion: `deletionTimestamp` is set, the pod stays until it ends.
    pub fn request_deletion(&self, ns: &str, name: &str) {
        let now = Timestamp::now().to_string();
        self.modify(ns, name, |p| {
            p["metadata"]["deletionTimestamp"] = json!(now);
        });
    }

    /// Someone else deletes the pod (e.g. eviction), with a status reason.
    pub fn delete_externally(&self, ns: &str, name: &str, reason: &str, message: &str) {
        self.modify(ns, name, |p| {
            p["status"]["reason"] = json!(reason);
            p["status"]["message"] = json!(message);
        });
        self.clone_inner().delete(ns, name);
    }
}

#[derive(Clone)]
struct Handler {
    state: Arc<Mutex<State>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Handler {
    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn create(&self, mut pod: Value) -> Result<Value, Box<Response<Body>>> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        let Some(name) = pod["metadata"]["name"].as_str().map(str::to_string) else {
            return Err(Box::new(status(422, "Invalid", "metadata.name is required")));
        };
        let mut st = self.state.lock().unwrap();
        let key = (ns.clone(), name.clone());
        if st.pods.contains_key(&key) {
            return Err(Box::new(status(409, "AlreadyExists", &format!("pods \"{name}\" already exists"))));
        }
        st.rv += 1;
        let rv = st.rv;
        pod["metadata"]["namespace"] = json!(ns);
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        pod["metadata"]["uid"] = json!(format!("uid-{rv}"));
        if pod["metadata"]["creationTimestamp"].is_null() {
            pod["metadata"]["creationTimestamp"] = json!(Timestamp::now().to_string());
        }
        if pod["status"]["phase"].is_null() {
            pod["status"] = json!({"phase": "Pending"});
        }
        st.pods.insert(key, pod.clone());
        st.history.push((rv, "ADDED", pod.clone()));
        drop(st);
        self.bump();
        Ok(pod)
    }

    fn modify(&self, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let Some(pod) = st.pods.get_mut(&(ns.to_string(), name.to_string())) else { return };
        f(pod);
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        let pod = pod.clone();
        st.history.push((rv, "MODIFIED", pod));
        drop(st);
        self.bump();
    }

    fn delete(&self, ns: &str, name: &str) -> Option<Value> {
        let mut st = self.state.lock().unwrap();
        let key = (ns.to_string(), name.to_string());
        let mut pod = st.pods.remove(&key)?;
        st.rv += 1;
        let rv = st.rv;
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.history.push((rv, "DELETED", pod.clone()));
        st.logs.entry(key).or_default().closed = true;
        drop(st);
        self.bump();
        Some(pod)
    }

    fn injected_failure(&self, method: &Method, target: &str) -> Option<u16> {
        let mut st = self.state.lock().unwrap();
        let f = st
            .failures
            .iter_mut()
            .find(|f| f.remaining > 0 && f.method == *method && target.contains(&f.path_contains))?;
        f.remaining -= 1;
        Some(f.status)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let target = format!("{}?{}", path, req.uri().query().unwrap_or(""));
        self.state.lock().unwrap().requests.push(format!("{method} {target}"));
        if let Some(code) = self.injected_failure(&method, &target) {
            return status(code, "InternalError", "injected failure");
        }
        let q = query(&req);
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        // api/v1/pods | api/v1/namespaces/{ns}/pods[/{name}[/log]]
        match (method.clone(), parts.as_slice()) {
            (Method::GET, ["api", "v1", "pods"]) => self.list_or_watch(None, &q).await,
            (Method::GET, ["api", "v1", "namespaces", ns, "pods"]) => self.list_or_watch(Some(ns), &q).await,
            (Method::POST, ["api", "v1", "namespaces", ns, "pods"]) => {
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => return status(400, "BadRequest", "unreadable body"),
                };
                let mut pod: Value = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => return status(400, "BadRequest", &e.to_string()),
                };
                if pod["metadata"]["namespace"].is_null() {
                    pod["metadata"]["namespace"] = json!(ns);
                }
                match self.create(pod) {
                    Ok(p) => json_response(201, &p),
                    Err(r) => *r,
                }
            }
            (Method::GET, ["api", "v1", "namespaces", ns, "pods", name]) => {
                match self.state.lock().unwrap().pods.get(&(ns.to_string(), name.to_string())) {
                    Some(p) => json_response(200, p),
                    None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
                }
            }
            (Method::DELETE, ["api", "v1", "namespaces", ns, "pods", name]) => match self.delete(ns, name) {
                Some(p) => json_response(200, &p),
                None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
            },
            (Method::GET, ["api", "v1", "namespaces", ns, "pods", name, "log"]) => self.logs(ns, name, &q),
            _ => status(404, "NotFound", &format!("the mock does not serve {method} {path}")),
        }
    }

    async fn list_or_watch(&self, ns: Option<&str>, q: &HashMap<String, String>) -> Response<Body> {
        let labels = q.get("labelSelector").cloned();
        let fields = q.get("fieldSelector").cloned();
        let ns = ns.map(str::to_string);
        let in_scope = move |pod: &Value| {
            ns.as_deref().is_none_or(|n| pod["metadata"]["namespace"].as_str() == Some(n))
                && selector_matches(pod, labels.as_ref(), fields.as_ref())
        };
        let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
        if !watching {
            let st = self.state.lock().unwrap();
            let items: Vec<Value> = st.pods.values().filter(|p| in_scope(p)).cloned().collect();
            let body = json!({"apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": st.rv.to_string()}, "items": items});
            return json_response(200, &body);
        }
        let from: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let timeout = q.get("timeoutSeconds").and_then(|v| v.parse::<u64>().ok()).unwrap_or(290);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let handler = self.clone();
        let rx = self.changed.subscribe();
        let stream =
            futures_util::stream::unfold((Vec::<Value>::new(), rx, from), move |(mut pending, mut rx, mut from)| {
                let handler = handler.clone();
                let in_scope = in_scope.clone();
                async move {
                    loop {
                        if let Some(ev) = pending.pop() {
                            let line = format!("{ev}\n");
                            return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), (pending, rx, from)));
                        }
                        {
                            let _ = rx.borrow_and_update();
                            let st = handler.state.lock().unwrap();
                            let mut new: Vec<Value> = st
                                .history
                                .iter()
                                .filter(|(rv, _, p)| *rv > from && in_scope(p))
                                .map(|(_, t, p)| json!({"type": t, "object": p}))
                                .collect();
                            if let Some((rv, _, _)) = st.history.last() {
                                from = from.max(*rv);
                            }
                            new.reverse();
                            pending = new;
                        }
                        if !pending.is_empty() {
                            continue;
                        }
                        tokio::select! {
                            r = rx.changed() => if r.is_err() { return None },
                            _ = tokio::time::sleep_until(deadline) => return None,
                        }
                    }
                }
            });
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
    }

    fn logs(&self, ns: &str, name: &str, q: &HashMap<String, String>) -> Response<Body> {
        let key = (ns.to_string(), name.to_string());
        {
            let st = self.state.lock().unwrap();
            let Some(pod) = st.pods.get(&key) else {
                return status(404, "NotFound", &format!("pods \"{name}\" not found"));
            };
            if pod["status"]["phase"] == "Pending" {
                return status(
                    400,
                    "BadRequest",
                    &format!("container \"{name}\" in pod \"{name}\" is waiting to start"),
                );
            }
        }
        let follow = matches!(q.get("follow").map(String::as_str), Some("true" | "1"));
        let timestamps = matches!(q.get("timestamps").map(String::as_str), Some("true" | "1"));
        let since: Option<Timestamp> = q.get("sinceTime").and_then(|s| s.parse().ok());
        let handler = self.clone();
        let rx = self.changed.subscribe();
        let generation = self.state.lock().unwrap().logs.get(&key).map(|l| l.generation).unwrap_or(0);
        let stream = futures_util::stream::unfold((0usize, rx), move |(mut next, mut rx)| {
            let handler = handler.clone();
            let key = key.clone();
            async move {
                loop {
                    let (line, closed) = {
                        let _ = rx.borrow_and_update();
                        let st = handler.state.lock().unwrap();
                        let log = st.logs.get(&key);
                        if log.is_some_and(|l| l.generation != generation) {
                            return None;
                        }
                        let lines = log.map(|l| l.lines.as_slice()).unwrap_or(&[]);
                        let mut found = None;
                        while next < lines.len() {
                            let (ts, text) = &lines[next];
                            next += 1;
                            if since.is_none_or(|s| *ts >= s) {
                                found = Some(if timestamps { format!("{ts} {text}\n") } else { format!("{text}\n") });
                                break;
                            }
                        }
                        (found, log.is_some_and(|l| l.closed) || !st.pods.contains_key(&key))
                    };
                    if let Some(line) = line {
                        return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), (next, rx)));
                    }
                    if !follow || closed {
                        return None;
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            }
        });
        Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
    }
}
