use super::*;
use proptest::prelude::*;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::json!(f)),
        ".*".prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\@<>$]*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z\"\\x01é]{0,6}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn paths_are_displayed_with_dots_and_brackets() {
    let path = [PathStep::Key("inputs"), PathStep::Index(3), PathStep::Key("file")];
    assert_eq!(display_path("payload", &path), "payload.inputs[3].file");
    assert_eq!(display_path("payload", &[]), "payload");
}

proptest! {
    #[test]
    fn walk_visits_every_string_with_its_path_and_bounds_the_size(v in arb_json()) {
        let mut seen = Vec::new();
        let bound = walk_strings(&mut Walk::default(), &v, |path, s| seen.push((display_path("", path), s.to_owned())));
        prop_assert!(bound >= json_size(&v), "bound {} < size {}", bound, json_size(&v));
        // Every string found is where its path says, and every string leaf is found, in document order.
        let mut expected = Vec::new();
        fn collect(v: &Value, at: String, out: &mut Vec<(String, String)>) {
            match v {
                Value::String(s) => out.push((at, s.clone())),
                Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| collect(x, format!("{at}[{i}]"), out)),
                Value::Object(m) => m.iter().for_each(|(k, x)| collect(x, format!("{at}.{k}"), out)),
                _ => {}
            }
        }
        collect(&v, String::new(), &mut expected);
        prop_assert_eq!(seen, expected);
    }
}
