//! The generated document is well formed: every reference resolves, every
//! operation has an id and answers 401 where the token is needed, and
//! every named schema is used.

use std::collections::BTreeSet;

use serde_json::Value;

fn document() -> Value {
    serde_json::from_str(&fado_openapi::json()).expect("the document is JSON")
}

fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.insert(v.as_str().expect("a $ref is a string").to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_schema_is_used() {
    let d = document();
    let mut found = BTreeSet::new();
    refs(&d, &mut found);
    for r in &found {
        let path = r.strip_prefix("#/").expect("a local reference");
        let target = path.split('/').try_fold(&d, |v, k| v.get(k));
        assert!(target.is_some(), "{r} does not resolve");
    }
    for kind in ["schemas", "responses"] {
        for name in d["components"][kind].as_object().unwrap().keys() {
            let r = format!("#/components/{kind}/{name}");
            assert!(found.contains(&r), "{r} is never used");
        }
    }
}

#[test]
fn every_operation_is_named_and_guarded() {
    let d = document();
    assert_eq!(d["openapi"], "3.1.0");
    let mut ids = BTreeSet::new();
    let mut operations = 0;
    for (path, item) in d["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            operations += 1;
            let id = op["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_string()), "{id} twice");
            let public = op.get("security") == Some(&Value::Array(vec![]));
            assert_eq!(
                public,
                !path.starts_with("/api/") || path == "/api/openapi.json",
                "{method} {path}: only the probes and the document are public"
            );
            if !public {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} needs the token but documents no 401"
                );
            }
        }
    }
    assert_eq!(operations, 48);
}

#[test]
fn input_fields_are_not_nullable_unless_null_means_something() {
    let d = document();
    let schemas = &d["components"]["schemas"];
    for (input, nullable) in [
        ("ClusterInput", &[][..]),
        ("FaasInput", &[]),
        ("StorageInput", &[]),
        ("BucketInput", &["replica_override"]),
        ("RouteOverrideInput", &["policy"]),
        ("SettingsInput", &[]),
    ] {
        let s = &schemas[input];
        assert_eq!(s["additionalProperties"], false, "{input}");
        for (field, f) in s["properties"].as_object().unwrap() {
            let text = f.to_string();
            assert_eq!(
                text.contains("\"null\""),
                nullable.contains(&field.as_str()),
                "{input}.{field}: {text}"
            );
        }
    }
}
