//! The authorization matrix over HTTP: every route family × every kind of caller, against a real
//! server on loopback.
//!
//! Each row is one request; its columns say what the owner, a customer in the object's
//! `allowedCustomerIds`, another customer and a superuser get. Every row is also sent without
//! credentials, with a token the server does not know and with an expired JWT: those three always
//! get 401 with the error envelope (authentication comes before everything, so a 401 says nothing
//! about the object either).
//!
//! The rules (pop-core's `visibility`, the original's §6.2): a caller sees the objects of the
//! customers it acts for (a superuser sees everything); insights and templates are also readable by
//! the customers in their `allowedCustomerIds`; writes need ownership. A caller that cannot see an
//! object gets **404, exactly as if it did not exist** — never 403, which would say that it does;
//! 403 is for objects the caller can see but not change, and for creating objects of a customer it
//! does not act for. Routes that do not write a kind this way answer 405 to anyone authenticated,
//! whatever the id (so they say nothing about the object either).
//!
//! `cargo test -p pop-http --test authz`

mod common;

use common::{ALLOWED, OTHER, OWNER, Server, Who, agenda, envelope, kinds, owned, world};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// What one caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum E {
    /// This status, with the error envelope when it is not 2xx.
    S(u16),
    /// 200, and the answer holds this many objects (`count`, else the length of `all` or of
    /// `progressList`).
    Sees(usize),
}
use E::{S, Sees};

const OK: E = S(200);

impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S(s) => write!(f, "{s}"),
            Sees(n) => write!(f, "200 sees {n}"),
        }
    }
}

/// One request and what each authenticated caller gets: `[owner, allowed, other, superuser]`.
struct Row {
    name: String,
    method: Method,
    path: String,
    body: Option<Value>,
    /// The superuser's own request, when it must not touch what the owner's did (deletes, leases).
    super_req: Option<(String, Option<Value>)>,
    expect: [E; 4],
}

fn row(name: impl Into<String>, method: Method, path: impl Into<String>, body: Option<Value>, expect: [E; 4]) -> Row {
    Row { name: name.into(), method, path: path.into(), body, super_req: None, expect }
}

fn get(name: impl Into<String>, path: impl Into<String>, expect: [E; 4]) -> Row {
    row(name, Method::GET, path, None, expect)
}

fn post(name: impl Into<String>, path: impl Into<String>, body: Value, expect: [E; 4]) -> Row {
    row(name, Method::POST, path, Some(body), expect)
}

impl Row {
    fn for_super(mut self, path: impl Into<String>, body: Option<Value>) -> Self {
        self.super_req = Some((path.into(), body));
        self
    }
}

/// How many objects an answer holds.
fn seen(body: &Value) -> Option<usize> {
    if let Some(n) = body.get("count").and_then(Value::as_u64) {
        return usize::try_from(n).ok();
    }
    ["all", "progressList"].iter().find_map(|k| body.get(*k).and_then(Value::as_array)).map(Vec::len)
}

/// Sends every row as every caller (the unauthenticated ones first, the owner and the superuser
/// last, so that refused callers meet the object before it changes), and fails with the whole table
/// when anything differs.
async fn check(server: &Server, rows: &[Row]) {
    let order = [Who::Anonymous, Who::BadToken, Who::Expired, Who::Allowed, Who::Other, Who::Owner, Who::Super];
    let mut table = String::from("| route | owner | allowed | other | superuser | anonymous | bad token | expired |\n");
    let mut wrong = Vec::new();
    for r in rows {
        let mut cells: Vec<String> = vec![String::new(); 7];
        for who in order {
            let want = match who {
                Who::Owner => r.expect[0],
                Who::Allowed => r.expect[1],
                Who::Other => r.expect[2],
                Who::Super => r.expect[3],
                Who::Anonymous | Who::BadToken | Who::Expired => S(401),
            };
            let (path, body) = match (&r.super_req, who) {
                (Some((p, b)), Who::Super) => (p.as_str(), b.as_ref()),
                _ => (r.path.as_str(), r.body.as_ref()),
            };
            let (status, answer) = server.call(who, r.method.clone(), path, body).await;
            let got_ok = match want {
                S(s) => status.as_u16() == s,
                Sees(n) => status == StatusCode::OK && seen(&answer) == Some(n),
            };
            let got = if status == StatusCode::OK {
                seen(&answer).map_or_else(|| "200".to_owned(), |n| format!("200 sees {n}"))
            } else {
                status.as_u16().to_string()
            };
            if !status.is_success() {
                // Every refusal carries the envelope.
                if answer.get("errorResponse").is_none() {
                    wrong.push(format!("{} as {who:?}: {status} without the error envelope: {answer}", r.name));
                }
            }
            let col = Who::ALL.iter().position(|w| *w == who).expect("column");
            cells[col] = if got_ok { got } else { format!("**{got}** (want {want})") };
            if !got_ok {
                wrong.push(format!("{} {} as {who:?}: want {want}, got {status}: {answer}", r.method, path));
            }
        }
        let _ = writeln!(table, "| {} | {} |", r.name, cells.join(" | "));
    }
    println!("{table}");
    assert!(wrong.is_empty(), "the matrix differs:\n{table}\n{}", wrong.join("\n"));
}

/// The columns of an object owned by the owner: readable by the allowed customer for the shared
/// kinds (insight, agendatemplate).
fn shared(kind: &str) -> bool {
    matches!(kind, "insight" | "agendatemplate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_reads_and_queries() {
    let server = Server::start().await;
    world(&server.engine).await;
    let o = owned(&server.engine, "r").await;
    let mut rows = Vec::new();
    for (kind, id, query) in kinds(&o) {
        let allowed = shared(kind);
        let one = if allowed { [OK, OK, S(404), OK] } else { [OK, S(404), S(404), OK] };
        let n = if allowed { [Sees(1), Sees(1), Sees(0), Sees(1)] } else { [Sees(1), Sees(0), Sees(0), Sees(1)] };
        rows.push(get(format!("GET {kind}/{{id}}"), format!("/pop/{kind}/{id}"), one));
        rows.push(get(format!("GET {kind}?id="), format!("/pop/{kind}?id={id}"), n));
        rows.push(get(
            format!("GET {kind}?{}", query.split('=').next().unwrap_or("")),
            format!("/pop/{kind}?{query}"),
            n,
        ));
        rows.push(get(format!("GET {kind}?…&bycount=true"), format!("/pop/{kind}?{query}&bycount=true"), n));
        rows.push(get(
            format!("GET {kind}/{{absent id}}"),
            format!("/pop/{kind}/no-such-{}", kind.replace('/', "-")),
            [S(404); 4],
        ));
    }
    // Listing every object of a kind: each caller sees its own (the world has one insight per
    // customer, the owner's readable by the allowed customer, plus the set above).
    rows.push(get("GET insight (list)", "/pop/insight", [Sees(2), Sees(3), Sees(1), Sees(4)]));
    rows.push(get(
        "GET customer?bycustomerId=acme",
        format!("/pop/customer?bycustomerId={OWNER}"),
        [Sees(2), Sees(0), Sees(0), Sees(2)],
    ));
    check(&server, &rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_updates() {
    let server = Server::start().await;
    world(&server.engine).await;
    let o = owned(&server.engine, "u").await;
    let mut rows = Vec::new();
    for (kind, id, _) in kinds(&o) {
        let expect = match kind {
            // Not written this way: 405 to anyone, whatever the id (it says nothing of the object).
            "agenda" | "progress/agenda" | "progress/operation" => [S(405); 4],
            k if shared(k) => [OK, S(403), S(404), OK],
            _ => [OK, S(404), S(404), OK],
        };
        rows.push(row(
            format!("PUT {kind}/{{id}}"),
            Method::PUT,
            format!("/pop/{kind}/{id}"),
            Some(json!({"title": format!("{kind} renamed")})),
            expect,
        ));
    }
    rows.push(row(
        "PUT customer/{absent id}",
        Method::PUT,
        "/pop/customer/no-such-customer",
        Some(json!({"title": "x"})),
        [S(404); 4],
    ));
    // Giving an object to another customer needs to act for both.
    rows.push(row(
        "PUT insight/{id} customerId→other",
        Method::PUT,
        format!("/pop/insight/{}", o.insight),
        Some(json!({"customerId": OTHER})),
        [S(403), S(403), S(404), OK],
    ));
    check(&server, &rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_creates() {
    let server = Server::start().await;
    world(&server.engine).await;
    let mine = [OK, S(403), S(403), OK];
    let rows = vec![
        post("POST agenda", "/pop/agenda", serde_json::to_value(agenda(OWNER, "c")).expect("json"), mine),
        post(
            "POST progress/agenda",
            "/pop/progress/agenda",
            json!({"customerId": OWNER, "agendaId": "x"}),
            [S(405); 4],
        ),
        post(
            "POST progress/operation",
            "/pop/progress/operation",
            json!({"customerId": OWNER, "operation": "a"}),
            [S(405); 4],
        ),
        post(
            "POST agendatemplate",
            "/pop/agendatemplate",
            json!({"customerId": OWNER, "title": "t", "agenda": {"operations": []}}),
            mine,
        ),
        post("POST customer", "/pop/customer", json!({"customerId": OWNER, "title": "c"}), mine),
        post(
            "POST insight",
            "/pop/insight",
            json!({"customerId": OWNER, "title": "i", "resourcePoolId": "pool-acme", "mappers": {"operationType": ["step"]}}),
            mine,
        ),
        post("POST resourcepool", "/pop/resourcepool", json!({"customerId": OWNER, "title": "p"}), mine),
    ];
    check(&server, &rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_deletes() {
    let server = Server::start().await;
    world(&server.engine).await;
    // The refused callers and the owner work on set `a`, the superuser on set `b`.
    let a = owned(&server.engine, "a").await;
    let b = owned(&server.engine, "b").await;
    let mut rows = Vec::new();
    // Operation progress goes with its agenda progress, so it is first; the agenda progress before
    // its agenda (deleting an agenda keeps its progress).
    let order =
        ["progress/operation", "progress/agenda", "agenda", "agendatemplate", "customer", "insight", "resourcepool"];
    let (ka, kb) = (kinds(&a), kinds(&b));
    for kind in order {
        let ida = &ka.iter().find(|k| k.0 == kind).expect("kind").1;
        let idb = &kb.iter().find(|k| k.0 == kind).expect("kind").1;
        let expect = match kind {
            "progress/operation" => [S(405); 4],
            k if shared(k) => [OK, S(403), S(404), OK],
            _ => [OK, S(404), S(404), OK],
        };
        rows.push(
            row(format!("DELETE {kind}/{{id}}"), Method::DELETE, format!("/pop/{kind}/{ida}"), None, expect)
                .for_super(format!("/pop/{kind}/{idb}"), None),
        );
    }
    for kind in order.into_iter().skip(1) {
        let ida = &ka.iter().find(|k| k.0 == kind).expect("kind").1;
        let idb = &kb.iter().find(|k| k.0 == kind).expect("kind").1;
        rows.push(
            get(format!("GET {kind}/{{deleted id}}"), format!("/pop/{kind}/{ida}"), [S(404); 4])
                .for_super(format!("/pop/{kind}/{idb}"), None),
        );
    }
    rows.push(get(
        "GET progress/operation?byagendaProgressId (cascade)",
        format!("/pop/progress/operation?byagendaProgressId={}", a.progress),
        [Sees(0); 4],
    ));
    check(&server, &rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agenda_and_progress_services() {
    let server = Server::start().await;
    world(&server.engine).await;
    let o = owned(&server.engine, "s").await;
    let id = json!({"agendaId": o.agenda});
    let absent = json!({"agendaId": "no-such-agenda"});
    let new_agenda = || json!({"agendas": [agenda(OWNER, "bulk")]});
    let rows = vec![
        post(
            "progress summary (linkId)",
            "/pop/progress/agenda/service",
            json!({"linkId": o.link}),
            [Sees(1), Sees(0), Sees(0), Sees(1)],
        ),
        post("explain", "/pop/agenda/service/explain", id.clone(), [OK, S(404), S(404), OK]),
        post("explain (absent agenda)", "/pop/agenda/service/explain", absent.clone(), [S(404); 4]),
        post("graph", "/pop/agenda/service/graph", id.clone(), [OK, S(404), S(404), OK]),
        post(
            "rerun",
            "/pop/agenda/service/rerun",
            json!({"agendaId": o.agenda, "params": ["resetAll"]}),
            [OK, S(404), S(404), OK],
        ),
        post("rerun (absent agenda)", "/pop/agenda/service/rerun", absent.clone(), [S(404); 4]),
        // The template is readable by the allowed customer, but its agenda is the owner's.
        post(
            "run (template)",
            "/pop/agenda/service/run",
            json!({"agendaTemplateId": o.template, "payload": "{\"f\": 1}"}),
            [OK, S(403), S(404), OK],
        ),
        post(
            "run (absent template)",
            "/pop/agenda/service/run",
            json!({"agendaTemplateId": "no-such", "payload": "{}"}),
            [S(404); 4],
        ),
        post("createAgenda", "/pop/agenda/service/createAgenda", new_agenda(), [OK, S(403), S(403), OK]),
        post(
            "resourcepool createAgenda",
            "/pop/resourcepool/service/createAgenda",
            new_agenda(),
            [OK, S(403), S(403), OK],
        ),
        post(
            "validate",
            "/pop/agenda/service/validate",
            serde_json::to_value(agenda(OWNER, "v")).expect("json"),
            [OK; 4],
        ),
        post("cancel", "/pop/agenda/service/cancel", id.clone(), [OK, S(404), S(404), OK]),
        post("cancel (absent agenda)", "/pop/agenda/service/cancel", absent, [S(404); 4]),
    ];
    check(&server, &rows).await;
    // The allowed and other customers' own agendas are theirs.
    let (status, _) = server
        .call(
            Who::Allowed,
            Method::POST,
            "/pop/agenda",
            Some(&serde_json::to_value(agenda(ALLOWED, "g")).expect("json")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the allowed customer submits its own agenda");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_pool_services() {
    let server = Server::start().await;
    world(&server.engine).await;
    let su = pop_core::authz::Principal::superuser("setup");
    for _ in 0..2 {
        server.engine.agendas().submit(&su, agenda(OWNER, "pool")).await.expect("submit");
    }
    server.engine.schedule_once().await.expect("schedule");
    let pull = json!({"insightId": "ins-acme", "count": 1});
    // The owner and the superuser each lease one agenda; the refused callers try the owner's lease.
    let (status, owner_pull) =
        server.call(Who::Owner, Method::POST, "/pop/resourcepool/service/getAgenda", Some(&pull)).await;
    assert_eq!(status, StatusCode::OK, "{owner_pull}");
    let (status, super_pull) =
        server.call(Who::Super, Method::POST, "/pop/resourcepool/service/getAgenda", Some(&pull)).await;
    assert_eq!(status, StatusCode::OK, "{super_pull}");
    let lease = |r: &Value| r["leases"][0]["token"].clone();
    let progress = |r: &Value, state: &str| {
        let mut p = r["agendaProgresses"][0].clone();
        p["processingState"] = json!(state);
        p["percentComplete"] = json!(if state == "COMPLETE" { 100.0 } else { 50.0 });
        if state == "COMPLETE" {
            p["processingStateMessage"] = json!("succeeded");
        }
        p
    };
    assert!(lease(&owner_pull).is_object() && lease(&super_pull).is_object(), "{owner_pull} {super_pull}");
    let with = |r: &Value, f: &dyn Fn(&Value) -> Value| f(r);
    let pool_row = |name: &str, route: &str, body: &dyn Fn(&Value) -> Value, expect: [E; 4]| {
        post(name, format!("/pop/resourcepool/service/{route}"), with(&owner_pull, body), expect)
            .for_super(format!("/pop/resourcepool/service/{route}"), Some(with(&super_pull, body)))
    };
    let rows = vec![
        // Pulling: the owner of the insight; the allowed customer may read it but not pull from it.
        post(
            "getAgenda (owner's insight)",
            "/pop/resourcepool/service/getAgenda",
            pull.clone(),
            [Sees(0), S(403), S(404), Sees(0)],
        ),
        post(
            "getAgenda (other's insight)",
            "/pop/resourcepool/service/getAgenda",
            json!({"insightId": "ins-initech", "count": 1}),
            [S(404), S(404), Sees(0), Sees(0)],
        ),
        post(
            "getAgenda (absent insight)",
            "/pop/resourcepool/service/getAgenda",
            json!({"insightId": "no-such", "count": 1}),
            [S(404); 4],
        ),
        pool_row("extendLease", "extendLease", &|r| json!({"leaseToken": lease(r)}), [OK, S(403), S(404), OK]),
        pool_row(
            "updateAgendaProgress",
            "updateAgendaProgress",
            &|r| json!({"agendaProgress": progress(r, "EXECUTING"), "leaseToken": lease(r)}),
            [OK, S(403), S(404), OK],
        ),
        pool_row(
            "updateAgenda (generated operation)",
            "updateAgenda",
            &|r| json!({"agendaId": lease(r)["agendaId"], "operations": [{"name": "gen", "type": "step"}], "leaseToken": lease(r)}),
            [OK, S(403), S(404), OK],
        ),
        pool_row(
            "finishAgenda",
            "finishAgenda",
            &|r| json!({"agendaProgress": progress(r, "COMPLETE"), "leaseToken": lease(r)}),
            [OK, S(403), S(404), OK],
        ),
        // Once finished, the lease is gone: a conflict for whoever may use the insight.
        pool_row(
            "extendLease (after finish)",
            "extendLease",
            &|r| json!({"leaseToken": lease(r)}),
            [S(409), S(403), S(404), S(409)],
        ),
    ];
    check(&server, &rows).await;
}

/// A caller never learns that another customer's object exists: what it gets for an object it may
/// not see is what it gets for an id nobody uses (the same status, title and message, the id aside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invisible_object_is_answered_as_an_absent_one() {
    let server = Server::start().await;
    world(&server.engine).await;
    let o = owned(&server.engine, "i").await;
    /// A request on the invisible object and the same on an absent one: method, paths, bodies.
    type Pair = (Method, String, String, Option<Value>, Option<Value>);
    let mut requests: Vec<Pair> = Vec::new();
    for (kind, id, _) in kinds(&o) {
        requests.push((Method::GET, format!("/pop/{kind}/{id}"), format!("/pop/{kind}/absent-id"), None, None));
        requests.push((Method::DELETE, format!("/pop/{kind}/{id}"), format!("/pop/{kind}/absent-id"), None, None));
        let patch = Some(json!({"title": "x"}));
        requests.push((
            Method::PUT,
            format!("/pop/{kind}/{id}"),
            format!("/pop/{kind}/absent-id"),
            patch.clone(),
            patch,
        ));
    }
    for route in ["explain", "graph", "cancel", "rerun"] {
        requests.push((
            Method::POST,
            format!("/pop/agenda/service/{route}"),
            format!("/pop/agenda/service/{route}"),
            Some(json!({"agendaId": o.agenda})),
            Some(json!({"agendaId": "absent-id"})),
        ));
    }
    requests.push((
        Method::POST,
        "/pop/resourcepool/service/getAgenda".into(),
        "/pop/resourcepool/service/getAgenda".into(),
        Some(json!({"insightId": o.insight, "count": 1})),
        Some(json!({"insightId": "absent-id", "count": 1})),
    ));
    let mut ids = [&o.agenda, &o.progress, &o.operation, &o.template, &o.customer, &o.insight, &o.pool];
    // (the longest first: an operation progress id starts with its agenda progress id)
    ids.sort_by_key(|id| std::cmp::Reverse(id.len()));
    for (method, real, absent, body_real, body_absent) in requests {
        let (s1, b1) = server.call(Who::Other, method.clone(), &real, body_real.as_ref()).await;
        let (s2, b2) = server.call(Who::Other, method.clone(), &absent, body_absent.as_ref()).await;
        assert_eq!(s1, s2, "{method} {real} vs {absent}: {b1} / {b2}");
        if s1 == StatusCode::METHOD_NOT_ALLOWED {
            continue; // not written this way, whatever the id
        }
        assert_eq!(s1, StatusCode::NOT_FOUND, "{method} {real}: {b1}");
        let (e1, e2) = (envelope(s1, &b1), envelope(s2, &b2));
        assert_eq!(e1["title"], e2["title"]);
        let mut d1 = e1["description"].as_str().unwrap_or_default().to_owned();
        for id in ids {
            d1 = d1.replace(id.as_str(), "absent-id");
        }
        assert_eq!(d1, e2["description"].as_str().unwrap_or_default(), "{method} {real}: the messages differ");
    }
}

/// 401 answers name the scheme (`WWW-Authenticate: Bearer`) and say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_answers() {
    let server = Server::start().await;
    for (who, why) in [(Who::Anonymous, ""), (Who::BadToken, ""), (Who::Expired, "expired")] {
        let resp = common::http()
            .get(format!("{}/pop/insight/ins-acme", server.base))
            .headers({
                let mut h = reqwest::header::HeaderMap::new();
                if let Some(a) = who.authorization() {
                    h.insert(reqwest::header::AUTHORIZATION, a.parse().expect("header"));
                }
                h
            })
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{who:?}");
        assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"), "{who:?}");
        let body: Value = resp.json().await.expect("json");
        let e = envelope(StatusCode::UNAUTHORIZED, &body);
        assert!(e["description"].as_str().unwrap_or_default().to_lowercase().contains(why), "{who:?}: {body}");
    }
    // The typed client maps them to Unauthorized.
    let err = Who::Expired.client(&server.base).get::<pop_core::model::Insight>("ins-acme").await.unwrap_err();
    assert!(matches!(err, pop_core::Error::Unauthorized(_)), "{err:?}");
}
