//! Schemathesis, with every check, against the running orchestrator's own
//! `/api/openapi.json`: thousands of generated requests, valid and invalid,
//! on a platform with real storage (embedded S3 servers), a bucket and an
//! object. The document and the implementation must agree: valid requests
//! accepted, invalid ones refused with a documented status, every answer
//! shaped as documented, no 500. `tests/schemathesis/` holds the hooks and
//! the one configured expectation, each with its reason.

use std::process::Command;

use harness::orchestrator::ADMIN_TOKEN;
use serde_json::json;

use crate::replication::start;
use crate::s3_server::platform;

/// The schemathesis CLI: `FADO_SCHEMATHESIS`, or where `./infra/test`
/// installs it.
fn schemathesis() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("FADO_SCHEMATHESIS") {
        return p.into();
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    let p = std::path::Path::new(&home).join(".cache/fado/venv/bin/schemathesis");
    assert!(
        p.exists(),
        "schemathesis is not installed at {}: run ./infra/test, which installs it, or set FADO_SCHEMATHESIS",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_agrees_with_its_openapi_document() {
    let cli = schemathesis();
    let o = start().await;
    let _servers = platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "images", "master_storage": "s1", "target_replicas": 1}),
    )
    .await;
    let r = harness::http()
        .put(o.fado.url("/api/buckets/images/objects/sample.txt"))
        .bearer_auth(ADMIN_TOKEN)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    let dir = harness::workspace().join("tests/schemathesis");
    let run = tokio::task::spawn_blocking({
        let url = o.fado.url("/api/openapi.json");
        move || {
            Command::new(&cli)
                .current_dir(&dir)
                .env("PYTHONPATH", &dir)
                .env("SCHEMATHESIS_HOOKS", "fado_hooks")
                .env("NO_COLOR", "1")
                .args(["--config-file", "schemathesis.toml", "run", &url])
                .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
                // One worker: with two, Hypothesis now and then fails in
                // its own thread ("AST constructor recursion depth
                // mismatch", CPython 3.11), a runtime error, not a finding.
                .args(["--checks", "all", "--max-examples", "100", "--workers", "1"])
                .args(["--seed", "20261205"])
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", cli.display()))
        }
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let tail: Vec<&str> = out.lines().rev().take(400).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    assert!(
        run.status.success(),
        "schemathesis found disagreements ({}):\n{}\n{}",
        run.status,
        tail.join("\n"),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.contains(" passed"), "no test case ran:\n{out}");
}
