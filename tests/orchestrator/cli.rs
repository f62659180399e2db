//! The `fado` command as an API client: the real binary against a running
//! orchestrator (and Garage for storage and objects, echo platforms for
//! invocations), one test per subcommand group, with `--json` parsed and the
//! error paths checked by exit code and message.

use std::path::Path;
use std::process::{Command, Output};

use harness::garage::{Garage, data};
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use serde_json::{Value, json};

/// Runs `fado ARGS` against `api` with `env` (the caller's FADO_* and HOME
/// never leak in: HOME is an empty directory, so no config file is found).
fn fado_env(api: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("a HOME");
    let mut cmd = Command::new(harness::fado_bin());
    cmd.args(args);
    if let Some(api) = api {
        cmd.arg("--api").arg(api);
    }
    cmd.env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("FADO_API")
        .env_remove("FADO_TOKEN")
        .env_remove("FADO_SECRET_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running fado")
}

fn api(o: &Orchestrator) -> String {
    o.fado.url("")
}

/// `fado ARGS` with the admin token from the environment.
fn run(o: &Orchestrator, args: &[&str]) -> Output {
    fado_env(Some(&api(o)), &[("FADO_TOKEN", ADMIN_TOKEN)], args)
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Succeeds; returns stdout.
fn ok(o: &Orchestrator, args: &[&str]) -> String {
    let out = run(o, args);
    assert!(out.status.success(), "fado {args:?}: {}", describe(&out));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Succeeds with `--json`; returns the parsed output.
fn json_of(o: &Orchestrator, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(o, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("fado {args:?}: not JSON ({e}):\n{out}"))
}

/// Fails with exit code 1; returns stderr.
fn fails_with(out: Output, args: &[&str]) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "fado {args:?}: {}",
        describe(&out)
    );
    let err = String::from_utf8(out.stderr).expect("UTF-8 errors");
    // (`invoke` prints its summary line before a failing status.)
    assert!(err.lines().any(|l| l.starts_with("Error: ")), "{err}");
    err
}

fn fails(o: &Orchestrator, args: &[&str]) -> String {
    fails_with(run(o, args), args)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .map(|i| i["name"].as_str().expect("a name").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_commands_list_show_add_change_and_remove() {
    let o = Orchestrator::start().await.unwrap();
    let c = json_of(&o, &["cluster", "add", "berlin", "--zone", "germany,hpc"]);
    assert_eq!(c["zones"], json!(["germany", "hpc"]), "{c}");
    json_of(&o, &["cluster", "add", "paris", "--zone", "france"]);

    let all = json_of(&o, &["cluster", "ls"]);
    assert_eq!(names(&all), ["berlin", "paris"]);
    let german = json_of(&o, &["cluster", "ls", "--zone", "germany"]);
    assert_eq!(names(&german), ["berlin"]);
    let table = ok(&o, &["cluster", "ls"]);
    let header = table.lines().next().unwrap();
    assert!(header.trim_start().starts_with("NAME"), "{table}");
    assert!(table.contains("germany,hpc"), "{table}");

    let by_id = json_of(&o, &["cluster", "show", &c["id"].to_string()]);
    assert_eq!(by_id["name"], "berlin");
    let shown = ok(&o, &["cluster", "show", "berlin"]);
    assert!(
        shown.contains("zones:") && shown.contains("germany,hpc"),
        "{shown}"
    );

    let changed = json_of(
        &o,
        &[
            "cluster", "update", "berlin", "--zone", "germany", "--name", "berlin-2",
        ],
    );
    assert_eq!(
        (&changed["name"], &changed["zones"]),
        (&json!("berlin-2"), &json!(["germany"]))
    );
    let cleared = json_of(&o, &["cluster", "update", "paris", "--no-zones"]);
    assert_eq!(cleared["zones"], json!([]));

    let out = ok(&o, &["cluster", "rm", "paris"]);
    assert!(out.contains("removed cluster \"paris\""), "{out}");
    assert_eq!(names(&json_of(&o, &["cluster", "ls"])), ["berlin-2"]);

    // A missing cluster is named, with the API's status and code.
    let err = fails(&o, &["cluster", "show", "paris"]);
    assert_eq!(
        err.trim(),
        "Error: cluster \"paris\": does not exist (404 not_found)"
    );
    // Invalid input names the field.
    let err = fails(&o, &["cluster", "add", "Not_A_Label"]);
    assert!(
        err.contains("cluster \"Not_A_Label\": name: ") && err.contains("(400 invalid)"),
        "{err}"
    );
    let err = fails(&o, &["cluster", "add", "berlin-2"]);
    assert!(err.contains("(409 conflict)"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faas_and_storage_commands_manage_deployments() {
    let o = Orchestrator::start().await.unwrap();
    ok(&o, &["cluster", "add", "c1", "--zone", "eu"]);
    ok(&o, &["cluster", "add", "c2", "--zone", "eu"]);

    let f = json_of(
        &o,
        &[
            "faas",
            "add",
            "f1",
            "--cluster",
            "c1",
            "--platform",
            "openfaas",
            "--url",
            "http://10.0.0.1:8080",
            "--label",
            "gpu",
            "--label",
            "fast",
            "--timeout-ms",
            "2500",
        ],
    );
    assert_eq!(f["path_template"], "/function/{function}", "{f}");
    assert_eq!(f["labels"], json!(["fast", "gpu"]), "{f}");
    assert_eq!(f["timeout_ms"], 2500);
    json_of(
        &o,
        &[
            "faas",
            "add",
            "f2",
            "--cluster",
            "c2",
            "--platform",
            "spin",
            "--url",
            "https://f2.example",
        ],
    );
    assert_eq!(
        names(&json_of(&o, &["faas", "ls", "--cluster", "c2"])),
        ["f2"]
    );
    let table = ok(&o, &["faas", "ls"]);
    assert!(
        table.contains("openfaas") && table.contains("https://f2.example"),
        "{table}"
    );
    let f = json_of(
        &o,
        &[
            "faas",
            "update",
            "f1",
            "--cluster",
            "c2",
            "--no-labels",
            "--path-template",
            "/fn/{function}",
        ],
    );
    assert_eq!(
        (&f["cluster"], &f["labels"], &f["path_template"]),
        (&json!("c2"), &json!([]), &json!("/fn/{function}"))
    );
    assert!(ok(&o, &["faas", "show", "f1"]).contains("/fn/{function}"));
    let err = fails(
        &o,
        &[
            "faas",
            "add",
            "f3",
            "--cluster",
            "c1",
            "--platform",
            "cloudrun",
            "--url",
            "http://x",
        ],
    );
    assert!(
        err.contains("platform: ") && err.contains("(400 invalid)"),
        "{err}"
    );
    let err = fails(
        &o,
        &[
            "faas",
            "add",
            "f3",
            "--cluster",
            "nowhere",
            "--platform",
            "spin",
            "--url",
            "http://x",
        ],
    );
    assert!(
        err.contains("cluster: ") && err.contains("nowhere"),
        "{err}"
    );
    ok(&o, &["faas", "rm", "f2"]);
    let err = fails(&o, &["faas", "rm", "f2"]);
    assert!(
        err.contains("FaaS deployment \"f2\"") && err.contains("404 not_found"),
        "{err}"
    );

    // Storage: unverified (made-up endpoint), with the secret from a file.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "very-secret\n").unwrap();
    let s = json_of(
        &o,
        &[
            "storage",
            "add",
            "s1",
            "--cluster",
            "c1",
            "--endpoint",
            "http://10.0.0.1:3900",
            "--access-key",
            "AK1",
            "--secret-key-file",
            secret.to_str().unwrap(),
            "--no-verify",
        ],
    );
    assert_eq!(
        (&s["access_key"], &s["health"]),
        (&json!("AK1"), &json!("unknown")),
        "{s}"
    );
    assert!(s.get("secret_key").is_none(), "{s}");
    let s = json_of(
        &o,
        &[
            "storage",
            "update",
            "s1",
            "--region",
            "eu-west-1",
            "--notify-token",
            "a-notify-token-0123",
            "--no-verify",
        ],
    );
    assert_eq!(
        (&s["region"], &s["notifications"]),
        (&json!("eu-west-1"), &json!(true)),
        "{s}"
    );
    assert_eq!(
        names(&json_of(&o, &["storage", "ls", "--cluster", "c1"])),
        ["s1"]
    );
    assert!(ok(&o, &["storage", "show", "s1"]).contains("eu-west-1"));
    // Verification is on by default: nothing answers S3 there.
    let err = fails(
        &o,
        &[
            "storage",
            "add",
            "s2",
            "--cluster",
            "c2",
            "--endpoint",
            &format!("http://127.0.0.1:{}", harness::free_port()),
            "--access-key",
            "AK2",
            "--secret-key",
            "x",
        ],
    );
    assert!(
        err.contains("storage deployment \"s2\": endpoint: ") && err.contains("(400 invalid)"),
        "{err}"
    );
    let err = fails(
        &o,
        &[
            "storage",
            "add",
            "s2",
            "--cluster",
            "c2",
            "--endpoint",
            "http://x",
            "--access-key",
            "a",
            "--secret-key-file",
            "/nonexistent/secret",
        ],
    );
    assert!(err.contains("/nonexistent/secret"), "{err}");
    ok(&o, &["storage", "rm", "s1"]);
    assert_eq!(json_of(&o, &["storage", "ls"]), json!([]));
}

/// Clusters c1..c3 in `germany`, each with unverified storage s1..s3.
async fn made_up_platform(o: &Orchestrator) {
    for i in 1..=3 {
        o.create(
            "/api/clusters",
            json!({"name": format!("c{i}"), "zones": ["germany"]}),
        )
        .await;
        o.create(
            "/api/storage-deployments?verify=false",
            json!({"name": format!("s{i}"), "cluster": format!("c{i}"),
                   "endpoint": format!("http://10.0.0.{i}:9000"), "access_key": "a", "secret_key": "b"}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_commands_set_placement_policy() {
    let o = Orchestrator::start().await.unwrap();
    made_up_platform(&o).await;

    let b = json_of(
        &o,
        &[
            "bucket",
            "add",
            "images",
            "--master",
            "s1",
            "--zone",
            "germany",
            "--replicas",
            "1",
        ],
    );
    assert_eq!(
        (&b["master_storage"], &b["target_replicas"]),
        (&json!("s1"), &json!(1)),
        "{b}"
    );
    json_of(&o, &["bucket", "add", "logs", "--master", "s2"]);
    assert_eq!(
        names(&json_of(&o, &["bucket", "ls", "--prefix", "im"])),
        ["images"]
    );

    let b = json_of(
        &o,
        &["bucket", "update", "images", "--replica-override", "s2,s3"],
    );
    let ids: Vec<i64> = b["replica_override"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{b}");
    // Changing another field keeps the override.
    let b = json_of(&o, &["bucket", "update", "images", "--replicas", "2"]);
    assert_eq!(
        (
            b["replica_override"].as_array().map(Vec::len),
            &b["target_replicas"]
        ),
        (Some(2), &json!(2)),
        "{b}"
    );
    let b = json_of(
        &o,
        &[
            "bucket",
            "update",
            "images",
            "--no-replica-override",
            "--any-zone",
        ],
    );
    assert_eq!(
        (&b["replica_override"], &b["allowed_zones"]),
        (&Value::Null, &json!([])),
        "{b}"
    );

    // Ten replicas cannot be placed on two other storage deployments.
    json_of(&o, &["bucket", "update", "logs", "--replicas", "10"]);
    o.settled().await;
    let under = json_of(&o, &["bucket", "ls", "--under-replicated"]);
    assert_eq!(names(&under), ["logs"], "{under}");
    let table = ok(&o, &["bucket", "ls"]);
    assert!(table.contains("10 (short 8)"), "{table}");
    let shown = ok(&o, &["bucket", "show", "logs"]);
    assert!(
        shown.contains("under-replicated") && shown.contains("STORAGE"),
        "{shown}"
    );

    let err = fails(&o, &["bucket", "update", "images", "--replicas", "99"]);
    assert!(
        err.contains("bucket \"images\": target_replicas: ") && err.contains("(400 invalid)"),
        "{err}"
    );
    let err = fails(&o, &["bucket", "add", "xyz1", "--master", "s9"]);
    assert!(
        err.contains("master_storage: ") && err.contains("s9"),
        "{err}"
    );

    ok(&o, &["bucket", "rm", "images"]);
    let err = fails(&o, &["bucket", "show", "images"]);
    assert_eq!(
        err.trim(),
        "Error: bucket \"images\": does not exist (404 not_found)"
    );
    ok(&o, &["bucket", "rm", "logs", "--force"]);
    assert_eq!(json_of(&o, &["bucket", "ls"]), json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn object_commands_stream_files_and_directories() {
    let o = crate::replication::start().await;
    let g = Garage::launch(1).await;
    ok(&o, &["cluster", "add", "c1", "--zone", "germany"]);
    // Registered through the CLI, verified against the real Garage.
    let s = json_of(
        &o,
        &[
            "storage",
            "add",
            "s1",
            "--cluster",
            "c1",
            "--endpoint",
            &g[0].endpoint,
            "--region",
            &g[0].region,
            "--access-key",
            &g[0].key_id,
            "--secret-key",
            &g[0].secret,
        ],
    );
    assert_eq!(s["name"], "s1", "{s}");
    ok(&o, &["bucket", "add", "files", "--master", "s1"]);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A file above the object API's 8 MiB part size (a multipart upload).
    let big = data(5, 9 << 20);
    std::fs::write(d.join("big.bin"), &big).unwrap();
    let up = json_of(
        &o,
        &[
            "object",
            "put",
            d.join("big.bin").to_str().unwrap(),
            "files/in/",
        ],
    );
    assert_eq!(
        (&up[0]["key"], &up[0]["size"]),
        (&json!("in/big.bin"), &json!(9 << 20)),
        "{up}"
    );
    let stat = json_of(&o, &["object", "stat", "files/in/big.bin"]);
    assert_eq!(
        (&stat["size"], &stat["storage"]),
        (&json!(9 << 20), &json!("s1")),
        "{stat}"
    );
    ok(
        &o,
        &[
            "object",
            "get",
            "files/in/big.bin",
            d.join("copy.bin").to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(d.join("copy.bin")).unwrap() == big,
        "the download differs"
    );
    // Into a directory, under the key's name; to stdout with `-`.
    std::fs::create_dir(d.join("into")).unwrap();
    ok(
        &o,
        &[
            "object",
            "get",
            "files/in/big.bin",
            d.join("into").to_str().unwrap(),
        ],
    );
    assert!(std::fs::read(d.join("into/big.bin")).unwrap() == big);
    let out = run(&o, &["object", "get", "files/in/big.bin", "-"]);
    assert!(
        out.status.success() && out.stdout == big,
        "stdout differs: {}",
        out.stderr.len()
    );

    // A directory, recursively.
    let tree = d.join("tree");
    let files: [(&str, Vec<u8>); 4] = [
        ("a.txt", b"alpha".to_vec()),
        ("sub/b.bin", data(7, 300_000)),
        ("sub/deeper/c", Vec::new()),
        ("sub/deeper/d e.txt", data(8, 2 << 20)),
    ];
    for (rel, bytes) in &files {
        let p = tree.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let ups = json_of(
        &o,
        &["object", "put", tree.to_str().unwrap(), "files/backup"],
    );
    assert_eq!(ups.as_array().unwrap().len(), 4, "{ups}");
    let listed = json_of(&o, &["object", "ls", "files/backup/sub/"]);
    let keys: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "backup/sub/b.bin",
            "backup/sub/deeper/c",
            "backup/sub/deeper/d e.txt"
        ]
    );
    let table = ok(&o, &["object", "ls", "files"]);
    assert!(
        table.contains("in/big.bin") && table.contains("9.0 MiB"),
        "{table}"
    );
    let back = d.join("back");
    ok(
        &o,
        &[
            "object",
            "get",
            "-r",
            "files/backup",
            back.to_str().unwrap(),
        ],
    );
    for (rel, bytes) in &files {
        let got = std::fs::read(back.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(&got == bytes, "{rel} differs after the round trip");
    }

    // Error paths: a missing local file, a missing object, an unknown bucket.
    let err = fails(
        &o,
        &[
            "object",
            "put",
            d.join("nope.txt").to_str().unwrap(),
            "files/x",
        ],
    );
    assert!(
        err.contains("nope.txt") && err.contains("No such file"),
        "{err}"
    );
    let err = fails(
        &o,
        &[
            "object",
            "get",
            "files/no/such",
            d.join("x").to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("object files/no/such") && err.contains("404"),
        "{err}"
    );
    assert!(!d.join("x").exists(), "a failed download left a file");
    let err = fails(&o, &["object", "ls", "nobucket"]);
    assert!(
        err.contains("bucket \"nobucket\"") && err.contains("404 not_found"),
        "{err}"
    );
    let err = fails(&o, &["object", "stat", "files"]);
    assert!(err.contains("names no object"), "{err}");

    ok(&o, &["object", "rm", "files/in/big.bin"]);
    assert_eq!(json_of(&o, &["object", "ls", "files/in/"]), json!([]));
    // A bucket holding objects is only removed with --force.
    let err = fails(&o, &["bucket", "rm", "files"]);
    assert!(
        err.contains("bucket \"files\"") && err.contains("409 conflict"),
        "{err}"
    );
    let removed = json_of(&o, &["object", "rm", "-r", "files/backup/sub"]);
    assert_eq!(removed.as_array().unwrap().len(), 3, "{removed}");
    ok(&o, &["bucket", "rm", "files", "--force"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn route_commands_and_invoke_go_through_the_ingress() {
    let o = Orchestrator::start().await.unwrap();
    let p0 = crate::router::platform("f0", 0, None);
    let p1 = crate::router::platform("f1", 0, None);
    for (i, p) in [&p0, &p1].iter().enumerate() {
        let (c, f, s, b) = (
            format!("c{i}"),
            format!("f{i}"),
            format!("s{i}"),
            format!("bk{i}"),
        );
        ok(&o, &["cluster", "add", &c, "--zone", "eu"]);
        ok(
            &o,
            &[
                "faas",
                "add",
                &f,
                "--cluster",
                &c,
                "--platform",
                "spin",
                "--url",
                &p.base_url,
            ],
        );
        ok(
            &o,
            &[
                "storage",
                "add",
                &s,
                "--cluster",
                &c,
                "--endpoint",
                &format!("http://10.9.0.{i}:3900"),
                "--access-key",
                "a",
                "--secret-key",
                "b",
                "--no-verify",
            ],
        );
        ok(
            &o,
            &["bucket", "add", &b, "--master", &s, "--replicas", "0"],
        );
    }
    o.settled().await;

    let table = json_of(&o, &["route", "ls"]);
    let routes = table["items"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "{table}");
    assert_eq!(routes[0]["targets"][0]["name"], "f0", "{table}");
    let text = ok(&o, &["route", "show", "bk1"]);
    assert!(text.contains("f1@c1"), "{text}");

    // An invocation: the answer, the deployment and its cluster.
    let inv = json_of(&o, &["invoke", "resize/v1?size=9", "--bucket", "bk1"]);
    assert_eq!(
        (&inv["status"], &inv["upstream"], &inv["cluster"]),
        (&json!(200), &json!("f1"), &json!("c1")),
        "{inv}"
    );
    assert_eq!(
        (&inv["body"]["path"], &inv["body"]["query"]),
        (&json!("/resize/v1"), &json!("size=9")),
        "{inv}"
    );
    let dir = tempfile::tempdir().unwrap();
    let payload = harness::upstream::pattern(1 << 20);
    std::fs::write(dir.path().join("in.bin"), &payload).unwrap();
    let at = format!("@{}", dir.path().join("in.bin").display());
    let inv = json_of(&o, &["invoke", "ingest", "--bucket", "bk0", "--data", &at]);
    assert_eq!(
        (&inv["body"]["method"], &inv["body"]["body_len"]),
        (&json!("POST"), &json!(1 << 20)),
        "{inv}"
    );
    let out = run(
        &o,
        &["invoke", "hello", "--bucket", "bk0", "-H", "X-Test: yes"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let body: Value = serde_json::from_slice(&out.stdout).expect("the function's JSON on stdout");
    assert_eq!(body["headers"]["x-test"], "yes", "{body}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("200 from f0 (cluster c0) in ") && err.contains(" ms"),
        "{err}"
    );
    // The function's own error status passes through, and fails the command.
    let err = fails(&o, &["invoke", "f?status=418", "--bucket", "bk0"]);
    assert!(err.contains("f0 answered 418"), "{err}");
    // FaDO's refusals are named.
    let err = fails(&o, &["invoke", "hello", "--bucket", "nope"]);
    assert!(
        err.contains("invoking \"hello\"") && err.contains("404 unknown_bucket"),
        "{err}"
    );
    let err = fails(
        &o,
        &[
            "invoke",
            "hello",
            "--bucket",
            "bk0",
            "--data",
            "@/nonexistent/body",
        ],
    );
    assert!(err.contains("/nonexistent/body"), "{err}");

    // A route override: in effect when the command returns.
    let set = json_of(
        &o,
        &["route", "set", "bk0", "--faas", "f1", "--policy", "first"],
    );
    assert_eq!(set["policy"], "first", "{set}");
    let inv = json_of(&o, &["invoke", "hello", "--bucket", "bk0"]);
    assert_eq!(inv["upstream"], "f1", "{inv}");
    let overrides = json_of(&o, &["route", "overrides"]);
    assert_eq!(overrides[0]["bucket"], "bk0", "{overrides}");
    let err = fails(&o, &["route", "set", "bk0", "--faas", "f9"]);
    assert!(
        err.contains("route override of bucket \"bk0\"") && err.contains("(409 conflict)"),
        "{err}"
    );
    ok(&o, &["route", "clear", "bk0"]);
    assert_eq!(json_of(&o, &["route", "overrides"]), json!([]));
    let err = fails(&o, &["route", "show", "nope"]);
    assert!(
        err.contains("bucket \"nope\"") && err.contains("404"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_commands_show_and_change_settings() {
    let o = Orchestrator::start().await.unwrap();
    let s = json_of(&o, &["settings", "show"]);
    assert_eq!(
        (&s["default_policy"], &s["match_header"]),
        (&json!("round_robin"), &json!("X-FaDO-Bucket")),
        "{s}"
    );
    let s = json_of(
        &o,
        &[
            "settings",
            "set",
            "--default-policy",
            "least_conn",
            "--missing-header",
            "any",
        ],
    );
    assert_eq!(
        (&s["default_policy"], &s["missing_header"]),
        (&json!("least_conn"), &json!("any")),
        "{s}"
    );
    assert!(ok(&o, &["settings", "show"]).contains("least_conn"));
    let err = fails(&o, &["settings", "set", "--default-policy", "fastest"]);
    assert!(
        err.contains("settings: default_policy: ") && err.contains("(400 invalid)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn job_commands_show_dead_letters_and_retry_them() {
    let o = Orchestrator::start().await.unwrap();
    made_up_platform(&o).await;
    ok(
        &o,
        &[
            "bucket",
            "add",
            "retry-me",
            "--master",
            "s1",
            "--replicas",
            "1",
        ],
    );
    o.settled().await;
    let db = o.db().await.unwrap();
    let id: i64 = db
        .query_one(
            "UPDATE jobs SET state = 'dead', attempts = max_attempts, last_error = 'SlowDown: try later'
             WHERE kind = 'create_replica' RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let id_s = id.to_string();

    let all = json_of(&o, &["job", "ls", "--bucket", "retry-me"]);
    assert!(all.as_array().unwrap().len() >= 2, "{all}");
    let dead = json_of(&o, &["job", "dead"]);
    assert_eq!(
        (&dead[0]["id"], &dead[0]["last_error"]),
        (&json!(id), &json!("SlowDown: try later")),
        "{dead}"
    );
    assert_eq!(
        json_of(
            &o,
            &["job", "ls", "--state", "dead", "--kind", "create_replica"]
        )[0]["id"],
        id
    );
    let table = ok(&o, &["job", "dead"]);
    assert!(
        table.contains("SlowDown: try later") && table.contains("create_replica"),
        "{table}"
    );
    let one = json_of(&o, &["job", "show", &id_s]);
    assert_eq!(one["state"], "dead");
    let one = json_of(&o, &["job", "ls", "--limit", "1"]);
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");

    let retried = json_of(&o, &["job", "retry", &id_s]);
    assert_eq!(
        (&retried[0]["state"], &retried[0]["attempts"]),
        (&json!("queued"), &json!(0)),
        "{retried}"
    );
    let err = fails(&o, &["job", "retry", &id_s]);
    assert!(
        err.contains(&format!("job {id}: ")) && err.contains("409 conflict"),
        "{err}"
    );
    let err = fails(&o, &["job", "show", "424242"]);
    assert_eq!(
        err.trim(),
        "Error: job 424242: does not exist (404 not_found)"
    );
    let err = fails(&o, &["job", "ls", "--state", "sleeping"]);
    assert!(
        err.contains("state: ") && err.contains("(400 invalid)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_health_and_under_replicated_buckets() {
    let o = Orchestrator::start().await.unwrap();
    made_up_platform(&o).await;
    ok(
        &o,
        &["bucket", "add", "thin", "--master", "s1", "--replicas", "5"],
    );
    o.settled().await;
    let s = json_of(&o, &["status"]);
    assert_eq!(s["readiness"]["status"], "ready", "{s}");
    assert_eq!(s["summary"]["clusters"], 3, "{s}");
    assert_eq!(
        s["summary"]["under_replicated_buckets"][0]["bucket"], "thin",
        "{s}"
    );
    // Both replicas wait for their first sync (no replicator runs): the
    // whole (empty) bucket is their lag, nothing to copy yet.
    assert_eq!(s["summary"]["replicas"]["pending"], 2, "{s}");
    let text = ok(&o, &["status"]);
    for want in [
        "ready",
        "postgres:",
        "1 under-replicated",
        "Under-replicated buckets:",
        "thin",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef fado"),
        ("fish", "complete -c fado"),
    ] {
        let out = fado_env(None, &[], &["completions", shell]);
        assert!(out.status.success(), "{}", describe(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {marker:?} missing");
        for sub in ["bucket", "object", "invoke", "status"] {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
    }
    let out = fado_env(None, &[], &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_errors_name_their_cause() {
    let o = Orchestrator::start().await.unwrap();
    let url = api(&o);
    let args = ["cluster", "ls"];

    // A wrong token: 401, and where the token came from.
    let out = fado_env(
        Some(&url),
        &[("FADO_TOKEN", "wrong-token-0123456789")],
        &args,
    );
    let err = fails_with(out, &args);
    assert!(
        err.contains("(401 unauthorized)")
            && err.contains("check the admin token")
            && err.contains("$FADO_TOKEN"),
        "{err}"
    );
    let out = fado_env(Some(&url), &[], &args);
    let err = fails_with(out, &args);
    assert!(
        err.contains("401") && err.contains("no token was given"),
        "{err}"
    );

    // The token from a file, and from the config file (API URL included).
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let out = fado_env(
        Some(&url),
        &[],
        &[
            "cluster",
            "ls",
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("api = \"{url}\"\ntoken_file = \"token\"\n"),
    )
    .unwrap();
    let out = fado_env(
        None,
        &[],
        &[
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "ls",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    // The default config file under HOME.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".config/fado")).unwrap();
    std::fs::write(
        home.path().join(".config/fado/config.toml"),
        format!("api = \"{url}\"\ntoken = \"wrong-token-9876543210\"\n"),
    )
    .unwrap();
    let out = fado_env(None, &[("HOME", home.path().to_str().unwrap())], &args);
    let err = fails_with(out, &args);
    assert!(
        err.contains("401") && err.contains(".config/fado/config.toml"),
        "{err}"
    );
    // $XDG_CONFIG_HOME, when set, is where the default config file is.
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("fado")).unwrap();
    std::fs::write(
        xdg.path().join("fado/config.toml"),
        format!("api = \"{url}\"\ntoken = \"{ADMIN_TOKEN}\"\n"),
    )
    .unwrap();
    let out = fado_env(
        None,
        &[
            ("HOME", home.path().to_str().unwrap()),
            ("XDG_CONFIG_HOME", xdg.path().to_str().unwrap()),
        ],
        &args,
    );
    assert!(out.status.success(), "{}", describe(&out));
    std::fs::write(&config, "api = \"http://x\"\ntokn = \"y\"\n").unwrap();
    let out = fado_env(
        None,
        &[],
        &["cluster", "ls", "--config", config.to_str().unwrap()],
    );
    let err = fails_with(out, &args);
    assert!(err.contains("config.toml") && err.contains("tokn"), "{err}");
    let out = fado_env(
        None,
        &[],
        &["cluster", "ls", "--config", "/nonexistent/fado.toml"],
    );
    let err = fails_with(out, &args);
    assert!(err.contains("/nonexistent/fado.toml"), "{err}");
    let out = fado_env(
        Some(&url),
        &[],
        &["cluster", "ls", "--token-file", "/nonexistent/token"],
    );
    let err = fails_with(out, &args);
    assert!(
        err.contains("/nonexistent/token") && err.contains("--token-file"),
        "{err}"
    );

    // Nothing listening: the URL that failed, and where it came from.
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    let out = fado_env(
        None,
        &[("FADO_API", &dead), ("FADO_TOKEN", ADMIN_TOKEN)],
        &args,
    );
    let err = fails_with(out, &args);
    assert!(
        err.contains(&format!("cannot reach {dead}/api/clusters")) && err.contains("$FADO_API"),
        "{err}"
    );
    let out = fado_env(Some("localhost:3000"), &[], &args);
    let err = fails_with(out, &args);
    assert!(
        err.contains("localhost:3000") && err.contains("--api"),
        "{err}"
    );
    assert!(Path::new(&harness::fado_bin()).exists());
}

/// The API client's options are offered by the commands that call the API,
/// and only by them.
#[test]
fn api_options_are_offered_only_where_they_apply() {
    let help = |args: &[&str]| {
        let out = Command::new(harness::fado_bin())
            .args(args)
            .output()
            .expect("running fado");
        assert!(out.status.success(), "fado {args:?}: {}", describe(&out));
        String::from_utf8(out.stdout).expect("UTF-8 help")
    };
    for args in [
        ["up", "--help"],
        ["serve", "--help"],
        ["demo", "--help"],
        ["db", "--help"],
    ] {
        let text = help(&args);
        for option in ["--api", "--token", "--config", "--json"] {
            assert!(
                !text.contains(option),
                "fado {args:?} offers {option}:\n{text}"
            );
        }
    }
    for args in [
        &["cluster", "--help"][..],
        &["cluster", "ls", "--help"],
        &["object", "put", "--help"],
        &["invoke", "--help"],
        &["status", "--help"],
    ] {
        let text = help(args);
        for option in ["--api", "--token", "--token-file", "--config", "--json"] {
            assert!(
                text.contains(option),
                "fado {args:?} lacks {option}:\n{text}"
            );
        }
    }
}
