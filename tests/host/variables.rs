//! `fermyon:spin/variables`: defaults, the environment provider, --variable,
//! undefined names, and missing required variables.

use harness::{AppDir, Fado, FadoOptions, fado_fails, http};
use serde_json::Value;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "vars"
[variables]
greeting = { default = "hello" }
from_env = { default = "unset" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{{wasm:probe}}"
[component.probe.variables]
greeting = "{{ greeting }}"
env_value = "env={{ from_env }}"
token = "Bearer {{ token }}"
"#;

async fn var(fado: &Fado, name: &str) -> (u16, Value) {
    let r = http()
        .get(fado.url("/vars"))
        .query(&[("name", name)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn defaults_environment_and_flags_resolve_in_order() {
    let app = AppDir::new(APP).unwrap();
    let fado = Fado::start_with(
        &app,
        FadoOptions {
            args: vec!["--variable".into(), "token=from-flag".into()],
            env: vec![
                ("SPIN_VARIABLE_FROM_ENV", "from-environment".into()),
                ("SPIN_VARIABLE_TOKEN", "loses-to-the-flag".into()),
            ],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(var(&fado, "greeting").await.1["value"], "hello");
    assert_eq!(
        var(&fado, "env_value").await.1["value"],
        "env=from-environment"
    );
    assert_eq!(var(&fado, "token").await.1["value"], "Bearer from-flag");
    let (status, v) = var(&fado, "nope").await;
    assert_eq!(status, 404);
    assert!(v["error"].as_str().unwrap().contains("Undefined"), "{v}");
    let (status, v) = var(&fado, "Not Valid").await;
    assert_eq!(status, 404);
    assert!(v["error"].as_str().unwrap().contains("InvalidName"), "{v}");
}

#[tokio::test]
async fn a_missing_required_variable_stops_start_up_naming_it() {
    let app = AppDir::new(APP).unwrap();
    let out = fado_fails(&app, &[], &[]).unwrap();
    assert!(
        out.contains("token") && out.contains("SPIN_VARIABLE_TOKEN"),
        "{out}"
    );
    assert!(
        out.contains(&app.manifest().display().to_string()),
        "names the manifest: {out}"
    );
    let out = fado_fails(&app, &["--variable", "tokn=x"], &[]).unwrap();
    assert!(
        out.contains("tokn"),
        "an unknown --variable is named: {out}"
    );
}
