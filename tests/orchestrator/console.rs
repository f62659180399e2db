//! The web console in Debian's Chromium, driven over WebDriver by
//! `tests/console/test_console.py` (Python's selenium, from the venv
//! `./infra/test` keeps): sign-in; building a platform from the browser
//! (clusters, storage on real embedded S3 servers, FaaS deployments, a
//! bucket with a policy whose replica becomes ready); an object uploaded and
//! downloaded; a route override set and cleared; a dead job retried; a
//! validation error shown next to its field; a 10,000-bucket catalog paged
//! through; keyboard-only use and WCAG text contrast. `demo.rs` opens the
//! demo's console too. `FADO_SCREENSHOTS=docs/images` refreshes the
//! README's screenshots.

use std::process::Command;

use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use harness::s3_server::S3Server;
use serde_json::json;

use crate::replication::start;

/// The venv's Python (`FADO_VENV`, or where `./infra/test` makes it).
fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("FADO_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            std::path::Path::new(&home).join(".cache/fado/venv")
        });
    let p = venv.join("bin/python");
    assert!(
        p.exists(),
        "no Python venv at {}: run ./infra/test, which makes it, or set FADO_VENV",
        venv.display()
    );
    p
}

/// Runs the browser test `test` against `o`, with `s3` (JSON) as the
/// storage it may register.
async fn browser_test(o: &Orchestrator, test: &str, s3: serde_json::Value) -> String {
    browser_test_at(&o.fado.url(""), ADMIN_TOKEN, test, s3, || o.fado.log()).await
}

/// Runs the browser test `test` against the FaDO at `url`; `log` is shown
/// when it fails.
pub(crate) async fn browser_test_at(
    url: &str,
    token: &str,
    test: &str,
    s3: serde_json::Value,
    log: impl Fn() -> String,
) -> String {
    let dir = harness::workspace().join("tests/console");
    let (url, token, test) = (url.to_string(), token.to_string(), test.to_string());
    let run = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .current_dir(&dir)
            .env("FADO_URL", url.trim_end_matches('/'))
            .env("FADO_TOKEN", token)
            .env("FADO_S3", s3.to_string())
            .args(["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"])
            .args(["test_console.py", "-k", &test])
            .output()
            .expect("running pytest")
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "the browser test {}:\n{out}\n{}\n--- fado ---\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr),
        log()
    );
    assert!(out.contains(" passed"), "no browser test ran:\n{out}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_needs_the_admin_token() {
    let o = start().await;
    browser_test(&o, "test_sign_in_needs_the_admin_token", json!([])).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_is_built_and_run_from_the_browser() {
    let o = start().await;
    let servers = S3Server::launch(2).await;
    let s3: Vec<_> = servers
        .iter()
        .map(|s| {
            json!({"endpoint": s.endpoint, "region": s.region,
                   "access_key": s.key_id, "secret_key": s.secret})
        })
        .collect();
    // A job that ran out of attempts, for the console to retry (after a
    // first request has brought the schema up).
    let (status, _) = o.api("GET", "/api/jobs", None).await;
    assert_eq!(status, 200);
    o.db()
        .await
        .unwrap()
        .execute(
            "INSERT INTO jobs (kind, bucket_name, state, attempts, max_attempts, last_error, finished_at)
             VALUES ('create_bucket', 'ghost', 'dead', 5, 5, 'seeded for the console test', now())",
            &[],
        )
        .await
        .unwrap();
    browser_test(
        &o,
        "test_a_platform_is_built_and_run_from_the_browser",
        json!(s3),
    )
    .await;
    drop(servers);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catalog_of_10000_buckets_pages_through_the_api() {
    let o = start().await;
    o.create("/api/clusters", json!({"name": "c1", "zones": ["germany"]}))
        .await;
    o.create(
        "/api/storage-deployments?verify=false",
        json!({"name": "s1", "cluster": "c1", "endpoint": "http://127.0.0.1:9",
               "access_key": "AK", "secret_key": "not-checked"}),
    )
    .await;
    let db = o.db().await.unwrap();
    db.batch_execute(
        "INSERT INTO buckets (name, master_storage_id, allowed_zones, target_replicas)
         SELECT 'bucket-' || lpad(g::text, 5, '0'), s.id, '{}', 0
         FROM generate_series(1, 10000) g, storage_deployments s WHERE s.name = 's1';
         ANALYZE; UPDATE catalog_generation SET value = value + 1",
    )
    .await
    .unwrap();
    let out = browser_test(
        &o,
        "test_a_catalog_of_10000_buckets_pages_through_the_api",
        json!([]),
    )
    .await;
    if let Some(line) = out.lines().find(|l| l.starts_with("console: ")) {
        println!("{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn text_contrast_and_keyboard_use() {
    let o = start().await;
    browser_test(&o, "test_text_contrast_and_keyboard_use", json!([])).await;
}
