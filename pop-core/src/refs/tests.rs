use super::*;
use crate::compat::{fixtures_dir, read_json};
use serde_json::json;

fn ctx(pairs: &[(&str, Value)]) -> HashMap<String, Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn compat_reference_vectors() {
    let Some(dir) = fixtures_dir("compat_reference_vectors") else { return };
    let mut params: HashMap<String, Value> =
        serde_json::from_value(read_json(&dir, "references/testParams.json")).unwrap();
    params.insert("agendaId".into(), json!("456-789"));
    let r = resolve(&read_json(&dir, "references/testReferences.json"), &params);
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(r.value, read_json(&dir, "references/testExpectedResult.json"));

    let c = ctx(&[
        ("analysis.1", read_json(&dir, "references/context-analysis.context.json")),
        ("encode.1", read_json(&dir, "references/context-encode.context.json")),
    ]);
    let r = resolve(&read_json(&dir, "references/context-reference.json"), &c);
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(r.value, read_json(&dir, "references/context-expectedResult.json"));
}

#[test]
fn original_composite_and_fallback_vectors() {
    let c = ctx(&[("sampleValue", json!(85)), ("sampleValue2", json!(95))]);
    let cases: &[(&str, Value)] = &[
        ("@<sampleValue><xmltag>45</xmltag>", json!("85<xmltag>45</xmltag>")),
        ("--@<sampleValue>--@<sampleValue2>", json!("--85--95")),
        ("-@<sampleValue::/wrongitem?95>", json!("-95")),
        ("@<sampleValue::/wrongitem?>", Value::Null),
        ("@<sampleValue::/wrongitem?abc>", json!("abc")),
        ("x@<sampleValue::/wrongitem?>y", json!("xnully")),
        ("@<sampleValue>@<sampleValue>", json!("8585")),
    ];
    for (input, expected) in cases {
        let r = resolve(&json!({ "v": input }), &c);
        assert!(r.is_complete(), "{input}: {r:?}");
        assert_eq!(&r.value["v"], expected, "{input}");
    }
}

#[test]
fn typed_whole_string_substitution_including_booleans() {
    let c = ctx(&[("a.out", json!({"flag": true, "n": 1.5, "s": "t", "o": {"k": [1]}, "z": null}))]);
    let r = resolve(
        &json!([
            "@<a.out::/flag>",
            "@<a.out::/n>",
            "@<a.out::s>",
            "@<a.out::/o>",
            "@<a.out::/z>",
            "@<a.out::/>",
            "@<a.out>"
        ]),
        &c,
    );
    assert!(r.is_complete());
    assert_eq!(r.value[0], json!(true));
    assert_eq!(r.value[1], json!(1.5));
    assert_eq!(r.value[2], json!("t"));
    assert_eq!(r.value[3], json!({"k": [1]}));
    assert_eq!(r.value[4], Value::Null);
    assert_eq!(r.value[5], r.value[6]);
}

#[test]
fn missing_is_apart_from_invalid() {
    let c = ctx(&[("a.out", json!({"o": {}, "arr": [1]}))]);
    let r = resolve(
        &json!({"m": "@<b.out::/x>", "m2": "pre @<b.out> post", "bad": "@<a.out::/nope>",
                            "comp": "x@<a.out::/o>", "arr": "y@<a.out::/arr>"}),
        &c,
    );
    assert_eq!(r.missing, vec!["b.out".to_string()]);
    assert_eq!(r.invalid.len(), 3, "{:?}", r.invalid);
    assert!(r.invalid.iter().any(|i| i.message.contains("finds nothing")));
    assert!(r.invalid.iter().any(|i| i.message.contains("object and cannot be used in a composite string")));
    assert!(r.invalid.iter().any(|i| i.message.contains("array and cannot be used in a composite string")));
    // unresolved strings are left as they were
    assert_eq!(r.value["m"], json!("@<b.out::/x>"));
    assert_eq!(r.value["m2"], json!("pre @<b.out> post"));
}

#[test]
fn parse_forms() {
    let (t, bad) = Template::parse("@<enc.1.out::a/b?fb>");
    assert!(bad.is_empty());
    let r = t.unwrap().whole().cloned().unwrap();
    assert_eq!(r.name, "enc.1.out");
    assert_eq!(r.pointer.as_deref(), Some("/a/b"));
    assert_eq!(r.fallback, Some(Fallback::Text("fb".into())));
    assert_eq!(r.operation(), Some("enc.1"));
    assert_eq!(operation_of("item.out.out"), Some("item.out"));
    assert_eq!(operation_of("item"), Some("item"));
    assert_eq!(operation_of("pop.agendaId"), None);

    let (t, bad) = Template::parse("no refs $$$x.out::/a");
    assert!(t.is_none() && bad.is_empty());
    let (t, bad) = Template::parse("open @<a.out and more");
    assert!(t.is_none());
    assert_eq!(bad.len(), 1);
    let (_, bad) = Template::parse("@<> @<x::/a~2>");
    assert_eq!(bad.len(), 2, "{bad:?}");
}

#[test]
fn keys_are_never_replaced_and_parsed_documents_are_reusable() {
    let doc = ParsedDocument::parse(json!({"@<a>": "@<a>", "list": ["@<a>", {"deep": "@<a>!"}]}));
    assert_eq!(doc.sites().len(), 3);
    let r1 = doc.resolve(&ctx(&[("a", json!(1))]));
    assert_eq!(r1.value, json!({"@<a>": 1, "list": [1, {"deep": "1!"}]}));
    let r2 = doc.resolve(&ctx(&[("a", json!("z"))]));
    assert_eq!(r2.value, json!({"@<a>": "z", "list": ["z", {"deep": "z!"}]}));
}

#[test]
fn scan_borrows_the_pieces_that_parse_owns() {
    let s = "a @<x.out::b/c?d> @<pop.agendaId>@<::/x> @<y::/~2> tail @<open";
    let mut pieces = Vec::new();
    scan(s, |p| pieces.push(p));
    assert_eq!(pieces.len(), 9, "{pieces:?}");
    assert_eq!(pieces[0], Piece::Text("a "));
    assert_eq!(
        pieces[1],
        Piece::Ref(RefSpan { raw: "@<x.out::b/c?d>", name: "x.out", pointer: Some("b/c"), fallback: Some("d") })
    );
    assert!(matches!(&pieces[4], Piece::Malformed { text: "@<::/x>", message } if message.contains("empty name")));
    assert!(matches!(&pieces[6], Piece::Malformed { message, .. } if message.contains("bad JSON pointer /~2")));
    assert!(matches!(&pieces[8], Piece::Malformed { text: "@<open", message } if message.contains("not closed")));
    let (t, malformed) = Template::parse(s);
    let owned: Vec<Reference> = t.unwrap().references().cloned().collect();
    let spans: Vec<Reference> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(r.to_reference()),
            _ => None,
        })
        .collect();
    assert_eq!(owned, spans);
    assert_eq!(owned[0].pointer.as_deref(), Some("/b/c"));
    assert_eq!(malformed.len(), 3);
}
