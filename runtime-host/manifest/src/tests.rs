use super::*;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(Path::new("/apps/demo/spin.toml"), text)
}

const GOOD: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"
version = "1.0.0"

[application.trigger.redis]
address = "redis://{{ redis_host }}:6379"

[variables]
redis_host = { default = "127.0.0.1" }
token = { required = true, secret = true }

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.http]]
route = { private = true }
component = "worker"

[[trigger.redis]]
channel = "jobs"
component = "worker"

[[trigger.http]]
route = "/inline"
component = { source = "inline.wasm" }

[component.api]
source = "target/api.wasm"
allowed_outbound_hosts = ["http://worker.spin.internal", "redis://{{ redis_host }}"]
key_value_stores = ["default"]
files = ["static/**/*", { source = "assets", destination = "/assets" }]
environment = { RUST_LOG = "info" }
[component.api.variables]
api_token = "Bearer {{ token }}"
[component.api.build]
command = "cargo build"

[component.worker]
source = "worker.wasm"
"#;

#[test]
fn parses_a_full_manifest() {
    let m = parse(GOOD).unwrap();
    assert_eq!(m.application.name, "demo");
    assert_eq!(m.dir, Path::new("/apps/demo"));
    assert_eq!(m.http_triggers.len(), 3);
    assert_eq!(m.http_triggers[1].route, Route::Private);
    assert_eq!(
        m.redis_triggers[0].address.as_str(),
        "redis://{{ redis_host }}:6379"
    );
    let api = m.component("api").unwrap();
    match &api.source {
        ComponentSource::Local(p) => assert_eq!(p, Path::new("/apps/demo/target/api.wasm")),
        other => panic!("{other:?}"),
    }
    assert_eq!(api.allowed_outbound_hosts.len(), 2);
    assert_eq!(api.files.len(), 2);
    assert_eq!(
        api.variables["api_token"].references().collect::<Vec<_>>(),
        ["token"]
    );
    assert!(m.variables["token"].secret);
    assert_eq!(m.http_triggers[2].component, "inline-component1");
    assert!(m.components.contains_key("inline-component1"));
    let (router, _) = m.http_router().unwrap();
    assert_eq!(router.route("/api/x").unwrap().component, "api");
    assert!(
        router.route("/worker").is_none(),
        "private routes are not public"
    );
}

fn expect_field(text: &str, field: &str) -> ManifestError {
    let err = parse(text).expect_err("manifest should be rejected");
    assert_eq!(err.field, field, "{err}");
    assert_eq!(err.file, Path::new("/apps/demo/spin.toml"));
    assert!(err.to_string().contains(field), "{err}");
    err
}

#[test]
fn errors_name_the_field() {
    expect_field(
        "spin_manifest_version = 1\n[application]\nname='x'\n",
        "spin_manifest_version",
    );
    expect_field(
        &GOOD.replace("route = \"/api/...\"", "route = \"/api/...\"\nroutes = 1"),
        "trigger.http[0].routes",
    );
    expect_field(
        &GOOD.replace(
            "source = \"worker.wasm\"",
            "source = \"worker.wasm\"\nai_models = [\"llama2-chat\"]",
        ),
        "component.worker.ai_models",
    );
    expect_field(
        &GOOD.replace("\"redis://{{ redis_host }}\"]", "\"redis://{{ nope }}\"]"),
        "component.api.allowed_outbound_hosts[1]",
    );
    expect_field(
        &GOOD.replace(
            "\"http://worker.spin.internal\"",
            "\"worker.spin.internal\"",
        ),
        "component.api.allowed_outbound_hosts[0]",
    );
    expect_field(
        &GOOD.replace(
            "\"http://worker.spin.internal\"",
            "\"http://nobody.spin.internal\"",
        ),
        "component.api.allowed_outbound_hosts[0]",
    );
    expect_field(
        &GOOD.replace("component = \"api\"", "component = \"apx\""),
        "trigger.http[0].component",
    );
    expect_field(
        &GOOD.replace(
            "token = { required = true, secret = true }",
            "token = { required = true, default = \"x\" }",
        ),
        "variables.token",
    );
    expect_field(
        &GOOD.replace("[component.worker]", "[component.Worker]"),
        "component.Worker",
    );
    expect_field(
        &GOOD.replace("destination = \"/assets\"", "destination = \"assets\""),
        "component.api.files[1].destination",
    );
    expect_field(
        &GOOD.replace("[[trigger.redis]]", "[[trigger.cron]]"),
        "trigger.cron",
    );
    let e = expect_field(
        &GOOD.replace("channel = \"jobs\"", "channel = 5"),
        "trigger.redis[0].channel",
    );
    assert!(e.message.contains("string"), "{e}");
}

#[test]
fn redis_trigger_needs_an_address() {
    let text = GOOD.replace(
        "[application.trigger.redis]\naddress = \"redis://{{ redis_host }}:6379\"\n",
        "",
    );
    expect_field(&text, "trigger.redis[0].address");
}

#[test]
fn invalid_toml_names_the_file() {
    let err = parse("spin_manifest_version = \n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/apps/demo/spin.toml: invalid TOML"),
        "{err}"
    );
}

#[test]
fn wagi_is_refused() {
    let text = GOOD.replace(
        "route = \"/api/...\"",
        "route = \"/api/...\"\nexecutor = { type = \"wagi\" }",
    );
    expect_field(&text, "trigger.http[0].executor.type");
}

#[test]
fn sweeps_are_read_from_the_fado_tool_table() {
    let text = GOOD.replace(
        "[application.trigger.redis]",
        "[application.tool.fado]\nsweeps = [{ name = \"planner\", every = \"30s\", channel = \"fado.planner\" }]\n\n[application.trigger.redis]",
    );
    let m = parse(&text).unwrap();
    assert_eq!(m.sweeps.len(), 1);
    assert_eq!(m.sweeps[0].every, std::time::Duration::from_secs(30));
    assert_eq!(m.sweeps[0].payload, "sweep");
    assert_eq!(
        m.sweeps[0].address.as_str(),
        "redis://{{ redis_host }}:6379"
    );
    let bad = text.replace("every = \"30s\"", "every = \"soon\"");
    expect_field(&bad, "application.tool.fado.sweeps[0].every");
    let bad = text.replace("channel = \"fado.planner\"", "chanel = \"fado.planner\"");
    expect_field(&bad, "application.tool.fado.sweeps[0].chanel");
}

#[test]
fn instance_reuse_is_read_from_the_component_tool_table() {
    let m = parse(GOOD).unwrap();
    assert!(m.components.values().all(|c| c.instance_reuse == 1));
    let text = GOOD.replace(
        "[component.worker]\nsource = \"worker.wasm\"\n",
        "[component.worker]\nsource = \"worker.wasm\"\n[component.worker.tool.fado]\ninstance_reuse = 500\n",
    );
    let m = parse(&text).unwrap();
    assert_eq!(m.components["worker"].instance_reuse, 500);
    assert_eq!(m.components["api"].instance_reuse, 1);
    expect_field(
        &text.replace("instance_reuse = 500", "instance_reuse = 0"),
        "component.worker.tool.fado.instance_reuse",
    );
    expect_field(
        &text.replace("instance_reuse = 500", "instance_reuse = \"many\""),
        "component.worker.tool.fado.instance_reuse",
    );
    expect_field(
        &text.replace("instance_reuse = 500", "reuse = 5"),
        "component.worker.tool.fado.reuse",
    );
}

#[test]
fn sqlite_databases_are_read_and_their_labels_checked() {
    let m = parse(GOOD).unwrap();
    assert!(m.components["worker"].sqlite_databases.is_empty());
    let with = |list: &str| {
        GOOD.replace(
            "source = \"worker.wasm\"",
            &format!("source = \"worker.wasm\"\nsqlite_databases = {list}"),
        )
    };
    let m = parse(&with(
        r#"["default", "orders-v2", "audit_log", "a-2", "ns:x"]"#,
    ))
    .unwrap();
    assert_eq!(
        m.components["worker"].sqlite_databases,
        ["default", "orders-v2", "audit_log", "a-2", "ns:x"]
    );
    for (bad, index) in [
        (r#"["default", ""]"#, 1),
        (r#"["Default"]"#, 0),
        (r#"["2db"]"#, 0),
        (r#"["my db"]"#, 0),
        (r#"["a-b_c"]"#, 0),
        (r#"["a--b"]"#, 0),
        (r#"["trailing-"]"#, 0),
    ] {
        let e = expect_field(
            &with(bad),
            &format!("component.worker.sqlite_databases[{index}]"),
        );
        assert!(!e.message.is_empty(), "{bad}");
    }
    expect_field(&with("\"default\""), "component.worker.sqlite_databases");
}
