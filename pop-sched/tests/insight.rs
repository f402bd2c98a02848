//! Insight selection (§5.1, the original's `InsightSelectorTest` / `InsightMapperTest`) and validation.

use pop_core::model::{Agenda, Customer, Insight};
use pop_sched::{Registry, select_insight, validate_insight};
use serde_json::json;

fn insight(id: &str, pool: &str, owner: &str, mappers: serde_json::Value) -> Insight {
    serde_json::from_value(json!({
        "id": id, "title": format!("Title {id}"), "resourcePoolId": pool, "customerId": owner, "mappers": mappers
    }))
    .expect("insight json")
}

fn customer(id: &str, pool: &str) -> Customer {
    Customer {
        id: Some(id.into()),
        customer_id: Some(id.into()),
        resource_pool_id: Some(pool.into()),
        ..Customer::default()
    }
}

fn agenda(v: serde_json::Value) -> Agenda {
    serde_json::from_value(v).expect("agenda json")
}

fn sample_agenda() -> Agenda {
    agenda(json!({
        "customerId": "cust",
        "params": {"myParam": "mYvalue", "count": 3, "nothing": null},
        "operations": [
            {"name": "Probe.1", "type": "MediaInfo", "payload": {}},
            {"name": "encode", "type": "sample", "payload": {}, "params": {"profile": "HD"}}
        ]
    }))
}

#[test]
fn mapper_kinds_match_case_insensitively() {
    let a = sample_agenda();
    let c = customer("cust", "pool");
    let cases: Vec<(&str, serde_json::Value, bool)> = vec![
        ("operationType matches", json!({"operationType": ["mediainfo"]}), true),
        ("operationType other", json!({"operationType": ["transcode"]}), false),
        ("operationName matches", json!({"OPERATIONNAME": ["probe.1"]}), true),
        ("operationName other", json!({"operationName": ["probe"]}), false),
        ("paramMap agenda param", json!({"paramMap": ["myparam=MyValue"]}), true),
        ("paramMap number as string", json!({"paramMap": ["count=3"]}), true),
        ("paramMap op param", json!({"parammap": ["PROFILE=hd"]}), true),
        ("paramMap wrong value", json!({"paramMap": ["profile=sd"]}), false),
        ("paramMap null value never matches", json!({"paramMap": ["nothing=null"]}), false),
        ("any mapper may match", json!({"operationType": ["x"], "operationName": ["ENCODE"]}), true),
        ("no mappers never match", json!({}), false),
    ];
    for (name, mappers, expect) in cases {
        let insights = vec![insight("i1", "pool", "cust", mappers)];
        let got = select_insight(&a, &c, &insights);
        assert_eq!(got.is_ok(), expect, "{name}: {got:?}");
    }
}

#[test]
fn candidates_are_the_customers_pool_and_visible_insights() {
    let a = sample_agenda();
    let c = customer("cust", "pool");
    let m = json!({"operationType": ["sample"]});
    let mut other_pool = insight("other-pool", "pool2", "cust", m.clone());
    other_pool.is_global = true;
    let not_visible = insight("not-visible", "pool", "someone", m.clone());
    let mut allowed = insight("allowed", "pool", "someone", m.clone());
    allowed.allowed_customer_ids = vec!["CUST".into()];
    let mut global = insight("global", "pool", "someone", m.clone());
    global.is_global = true;
    let owned = insight("owned", "pool", "cust", m.clone());

    let pick = |list: Vec<Insight>| select_insight(&a, &c, &list).map(|i| i.id.clone().unwrap_or_default());
    assert_eq!(pick(vec![other_pool.clone(), not_visible.clone(), allowed.clone()]).ok().as_deref(), Some("allowed"));
    assert_eq!(pick(vec![not_visible.clone(), global.clone(), owned.clone()]).ok().as_deref(), Some("global"));
    assert_eq!(pick(vec![not_visible.clone(), owned.clone()]).ok().as_deref(), Some("owned"));
    let err = pick(vec![other_pool, not_visible]).expect_err("nothing usable");
    let text = err.to_string();
    assert!(text.contains("cust") && text.contains("pool"), "{text}");
}

#[test]
fn default_insight_prefers_by_id_or_title_else_first() {
    let c = customer("cust", "pool");
    let m = json!({"operationType": ["sample"]});
    let insights = vec![
        insight("first", "pool", "cust", m.clone()),
        insight("second", "pool", "cust", m.clone()),
        insight("third", "pool", "cust", json!({"operationType": ["nope"]})),
    ];
    let with = |pref: &str| {
        let a = agenda(json!({
            "customerId": "cust", "params": {"defaultInsight": pref},
            "operations": [{"name": "x", "type": "sample", "payload": {}}]
        }));
        select_insight(&a, &c, &insights).map(|i| i.id.clone().unwrap_or_default()).expect("selects")
    };
    assert_eq!(with("SECOND"), "second");
    assert_eq!(with("title second"), "second");
    assert_eq!(with("third"), "first", "a preferred insight that does not match is not chosen");
    assert_eq!(with("unknown"), "first");
}

#[test]
fn malformed_mapper_disqualifies_only_its_insight_and_is_reported() {
    let a = sample_agenda();
    let c = customer("cust", "pool");
    let broken =
        insight("broken", "pool", "cust", json!({"paramMap": ["key=", "novalue"], "operationType": ["sample"]}));
    let unknown = insight("unknown", "pool", "cust", json!({"operationKind": ["sample"]}));
    let good = insight("good", "pool", "cust", json!({"operationType": ["sample"]}));
    let all = [broken.clone(), unknown.clone(), good];
    let got = select_insight(&a, &c, &all).expect("good one matches");
    assert_eq!(got.id.as_deref(), Some("good"));

    let err = select_insight(&a, &c, &[broken, unknown]).expect_err("nothing well-formed matches");
    let problems = err.problem_list();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].message.contains("customer cust") && problems[0].message.contains("resource pool pool"));
    assert!(problems[0].message.contains("insight broken") && problems[0].message.contains("insight unknown"));
    assert!(problems.iter().any(|p| p.message.contains("insight broken") && p.message.contains("\"key=\"")));
    assert!(problems.iter().any(|p| p.message.contains("\"novalue\"")));
    assert!(problems.iter().any(|p| p.message.contains("unknown mapper \"operationKind\"")));
}

#[test]
fn customer_without_pool_or_id_is_an_error() {
    let a = sample_agenda();
    let mut c = customer("cust", "pool");
    c.resource_pool_id = None;
    let err = select_insight(&a, &c, &[]).expect_err("no pool");
    assert!(err.to_string().contains("customer cust has no resourcePoolId"), "{err}");
    let anonymous = Customer::default();
    assert!(select_insight(&a, &anonymous, &[]).is_err());
}

#[test]
fn validation_lists_every_problem() {
    let registry = Registry::new();
    let mut ok = insight("ok", "pool", "cust", json!({"operationType": ["sample"]}));
    ok.scheduling_algorithm = Some("fairness".into());
    assert!(validate_insight(&ok, &registry).is_ok());
    ok.scheduling_algorithm = None;
    assert!(validate_insight(&ok, &registry).is_ok(), "missing algorithm means FIFO");

    let mut bad = insight("bad", "pool", "cust", json!({"paramMap": ["=x"], "operationtype": ["a"]}));
    bad.scheduling_algorithm = Some("Lottery".into());
    let err = validate_insight(&bad, &registry).expect_err("invalid");
    let problems = err.problem_list();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].field.as_deref(), Some("mappers.paramMap"));
    assert_eq!(problems[1].field.as_deref(), Some("schedulingAlgorithm"));
    assert!(problems[1].message.contains("\"Lottery\"") && problems[1].message.contains("RoundRobin"));
}
