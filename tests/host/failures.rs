//! Failure behaviour: traps and limits give a 500 and the host keeps
//! serving; manifest and start-up errors name the file and the field.

use harness::{AppDir, Fado, FadoOptions, fado_fails, http, probe_app, probe_manifest};
use serde_json::Value;

/// `fado serve` of `app` with extra command-line `args`.
fn start_with_args(app: &AppDir, args: &[&str]) -> Fado {
    Fado::start_with(
        app,
        FadoOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        },
    )
    .unwrap()
}

async fn get(fado: &Fado, path: &str) -> (u16, String) {
    let r = http().get(fado.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn traps_and_memory_limits_give_500_and_serving_continues() {
    let app = probe_app(&[]);
    let fado = start_with_args(&app, &["--max-instance-memory", "64MiB"]);
    for path in ["/trap", "/oom"] {
        let (status, body) = get(&fado, path).await;
        assert_eq!(status, 500, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "component_error", "{path}: {v}");
        let (status, _) = get(&fado, "/still-alive").await;
        assert_eq!(status, 200, "serving continues after {path}");
    }
    let log = fado.log();
    assert!(
        log.contains("deliberate trap requested by the test"),
        "the trap is logged:\n{log}"
    );
    let errors = fado
        .metric("fado_component_errors_total", "probe")
        .await
        .expect("an error counter for the probe");
    assert!(errors.ends_with(" 2"), "{errors}");
}

#[tokio::test]
async fn an_execution_time_budget_interrupts_a_busy_component() {
    let app = probe_app(&[]);
    let fado = start_with_args(&app, &["--max-execution-time", "0.5"]);
    let started = std::time::Instant::now();
    let (status, body) = get(&fado, "/spin").await;
    assert_eq!(status, 500, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(get(&fado, "/ok").await.0, 200);
}

#[tokio::test]
async fn a_reused_instance_gets_a_fresh_budget_for_each_request() {
    // Three requests of 300 ms each on one instance: 900 ms in all, more
    // than the 500 ms budget, which is per request, not per instance.
    let manifest =
        harness::probe_manifest(&[]) + "[component.probe.tool.fado]\ninstance_reuse = 3\n";
    let app = AppDir::new(&manifest).unwrap();
    let fado = start_with_args(&app, &["--max-execution-time", "0.5"]);
    let mut served = Vec::new();
    for _ in 0..3 {
        let (status, body) = get(&fado, "/busy?ms=300").await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        served.push(v["served"].as_u64().unwrap());
    }
    assert_eq!(served, [1, 2, 3], "one instance served the three");
    // The budget still stops a request that runs past it on a reused instance.
    assert_eq!(get(&fado, "/busy?ms=100").await.0, 200);
    assert_eq!(get(&fado, "/busy?ms=2000").await.0, 500);
}

#[tokio::test]
async fn manifest_errors_name_the_file_and_the_field() {
    let app = AppDir::new(
        &probe_manifest(&[]).replace("route = \"/...\"", "route = \"/...\"\nroutes = 3"),
    )
    .unwrap();
    let out = fado_fails(&app, &[], &[]).unwrap();
    let file = app.manifest().display().to_string();
    assert!(
        out.contains(&file) && out.contains("trigger.http[0].routes"),
        "{out}"
    );

    let app = AppDir::new(
        &probe_manifest(&[]).replace("source = \"{{wasm:probe}}\"", "source = \"missing.wasm\""),
    )
    .unwrap();
    let out = fado_fails(&app, &[], &[]).unwrap();
    assert!(
        out.contains("component.probe.source") && out.contains("missing.wasm"),
        "{out}"
    );

    // A Redis-only component cannot serve HTTP.
    let app =
        AppDir::new(&probe_manifest(&[]).replace("{{wasm:probe}}", "{{wasm:redis-sink}}")).unwrap();
    let out = fado_fails(&app, &[], &[]).unwrap();
    assert!(out.contains("wasi:http/incoming-handler"), "{out}");

    let out = fado_fails(&probe_app(&[]), &["--max-instance-memory", "lots"], &[]).unwrap();
    assert!(out.contains("--max-instance-memory"), "{out}");
}

/// A component importing WASI's environment (which fado provides), then
/// `interface` with one function, `infer: func(prompt: string) -> string`.
fn component_importing(interface: &str) -> Vec<u8> {
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection,
        ComponentValType, InstanceType, PrimitiveValType,
    };
    let string = ComponentValType::Primitive(PrimitiveValType::String);
    let mut environment = InstanceType::new();
    environment.ty().defined_type().tuple([string, string]);
    environment
        .ty()
        .defined_type()
        .list(ComponentValType::Type(0));
    environment
        .ty()
        .function()
        .params(Vec::<(&str, ComponentValType)>::new())
        .result(Some(ComponentValType::Type(1)));
    environment.export("get-environment", ComponentTypeRef::Func(2));
    let mut unprovided = InstanceType::new();
    unprovided
        .ty()
        .function()
        .params([("prompt", string)])
        .result(Some(string));
    unprovided.export("infer", ComponentTypeRef::Func(0));
    let mut types = ComponentTypeSection::new();
    types.instance(&environment).instance(&unprovided);
    let mut imports = ComponentImportSection::new();
    imports
        .import("wasi:cli/environment@0.2.0", ComponentTypeRef::Instance(0))
        .import(interface, ComponentTypeRef::Instance(1));
    let mut component = Component::new();
    component.section(&types).section(&imports);
    component.finish()
}

#[tokio::test]
async fn interfaces_fado_lacks_are_refused_by_name() {
    // Spin's LLM interface, releases of the others fado does not have, and
    // WASI 0.3.
    for interface in [
        "fermyon:spin/llm@2.0.0",
        "spin:postgres/postgres@3.0.0",
        "spin:mqtt/mqtt@3.0.0",
        "spin:mysql/mysql@3.0.0",
        "wasi:io/poll@0.3.0",
    ] {
        let app = AppDir::new(&probe_manifest(&[]).replace(
            "[component.probe]",
            "[[trigger.http]]\nroute = \"/x\"\ncomponent = \"x\"\n\
             [component.x]\nsource = \"x.wasm\"\n[component.probe]",
        ))
        .unwrap();
        std::fs::write(app.path().join("x.wasm"), component_importing(interface)).unwrap();
        let out = fado_fails(&app, &[], &[]).unwrap();
        assert!(
            out.contains(&format!(
                "component \"x\" imports {interface}, which fado does not provide"
            )),
            "{out}"
        );
    }
}
