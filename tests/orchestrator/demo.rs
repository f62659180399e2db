//! The README's main command, headless: `fado demo` (what `./infra/up`
//! runs) starts three clusters and the orchestrator, an invocation through
//! the ingress lands on a cluster holding its bucket, Ctrl-C stops
//! everything it started, and a second run finds the first one's state.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use harness::{Redis, fado_bin, free_port_block, http, shared_postgres, target_dir, workspace};
use serde_json::Value;

/// A running `fado demo`, stopped with SIGINT when dropped.
struct Demo {
    child: Child,
    api: String,
    ports: Vec<u16>,
    banner: String,
}

struct Setup {
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
    listen: u16,
    storage_base: u16,
    faas_base: u16,
}

impl Setup {
    async fn new(redis: &Redis) -> Result<Self> {
        let pg = shared_postgres();
        let database = pg.create_database().await?;
        let env = vec![
            ("SPIN_VARIABLE_PG_HOST", "127.0.0.1".to_string()),
            ("SPIN_VARIABLE_PG_PORT", pg.port.to_string()),
            ("SPIN_VARIABLE_PG_USER", "postgres".into()),
            ("SPIN_VARIABLE_PG_PASSWORD", "unused".into()),
            ("SPIN_VARIABLE_PG_DATABASE", database),
            ("SPIN_VARIABLE_REDIS_HOST", "127.0.0.1".into()),
            ("SPIN_VARIABLE_REDIS_PORT", redis.port.to_string()),
            // The tests' shared compile cache: components are compiled once.
            (
                "FADO_CACHE_DIR",
                target_dir()
                    .join("test-component-cache")
                    .display()
                    .to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(Self {
            data: tempfile::Builder::new().prefix("fado-demo-").tempdir()?,
            env,
            listen: free_port_block(1),
            storage_base: free_port_block(3),
            faas_base: free_port_block(3),
        })
    }

    /// Starts the demo and waits for its banner.
    fn start(&self) -> Result<Demo> {
        let mut child = Command::new(fado_bin())
            .arg("demo")
            .arg("--root")
            .arg(workspace())
            .arg("--data-dir")
            .arg(self.data.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.listen))
            .arg("--admin-listen")
            .arg("none")
            .arg("--storage-port-base")
            .arg(self.storage_base.to_string())
            .arg("--faas-port-base")
            .arg(self.faas_base.to_string())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("FADO_ADMIN_TOKEN")
            .env_remove("FADO_ENCRYPTION_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning fado demo")?;
        let stdout = child.stdout.take().context("the demo's stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut ports = vec![self.listen];
        ports.extend((0..3).map(|i| self.storage_base + i));
        ports.extend((0..3).map(|i| self.faas_base + i));
        let mut demo = Demo {
            child,
            api: format!("http://127.0.0.1:{}", self.listen),
            ports,
            banner: String::new(),
        };
        // Generous: a cold run compiles every component first.
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    demo.banner.push_str(&line);
                    demo.banner.push('\n');
                    if line.starts_with("Logs in ") {
                        return Ok(demo);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = demo.child.wait()?;
                    bail!(
                        "fado demo exited ({status}) before it was ready:\n{}\n{}",
                        demo.banner,
                        self.logs()
                    );
                }
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "fado demo was not ready within 600 s:\n{}\n{}",
                    demo.banner,
                    self.logs()
                );
            }
        }
    }

    /// Every log the demo wrote, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(dir) = std::fs::read_dir(self.data.path().join("logs")) {
            for e in dir.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                out.push_str(&format!("--- {}\n", e.path().display()));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.data.path().join("admin-token"))
            .expect("the demo keeps its admin token")
            .trim()
            .to_string()
    }
}

impl Demo {
    /// Ctrl-C, as a newcomer stops it; returns the exit status.
    fn interrupt(&mut self) -> Result<std::process::ExitStatus> {
        Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if std::time::Instant::now() > deadline {
                bail!("fado demo did not stop within 120 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.interrupt();
        }
    }
}

/// Running processes whose command line names `dir`: every process the
/// demo starts is given a directory under its data directory.
fn processes_mentioning(dir: &std::path::Path) -> Vec<(u32, String)> {
    let needle = dir.display().to_string();
    all_processes()
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&needle))
        .collect()
}

/// Every process (pid, command line) this user can see.
fn all_processes() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            // Zombies and kernel threads have an empty command line.
            (!raw.is_empty()).then(|| (pid, String::from_utf8_lossy(&raw).replace('\0', " ")))
        })
        .collect()
}

/// The processes (pid, command line) with a TCP socket listening on `port`,
/// found through /proc/net/tcp{,6} and each process's open descriptors.
fn listeners_on(port: u16) -> Vec<(u32, String)> {
    let suffix = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1, state field 3 (0A = LISTEN), inode field 9.
            if f.len() > 9 && f[1].ends_with(&suffix) && f[3] == "0A" {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    all_processes()
        .into_iter()
        .filter(|(pid, _)| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
        })
        .collect()
}

async fn api(demo: &Demo, token: &str, path: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{}{path}", demo.api))
        .bearer_auth(token)
        .send()
        .await
        .expect("the API answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Clusters that hold bucket `images`: its master's and its ready replicas'.
async fn holders(demo: &Demo, token: &str) -> Vec<String> {
    let (s, replicas) = api(demo, token, "/api/buckets/images/replicas").await;
    assert_eq!(s, 200, "{replicas}");
    let items = replicas["items"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<String> = items
        .iter()
        .filter(|r| r["state"] == "ready")
        .filter_map(|r| r["cluster"].as_str().map(str::to_string))
        .collect();
    let (_, bucket) = api(demo, token, "/api/buckets/images").await;
    if let Some(m) = bucket["master_cluster"].as_str() {
        out.push(m.to_string());
    }
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_main_command_starts_routes_by_bucket_stops_and_restarts() {
    let redis = Redis::start().unwrap();
    let setup = Setup::new(&redis).await.unwrap();
    let mut demo = setup.start().unwrap();
    let token = setup.token();
    for want in [
        "hpc-cluster (germany, high-performance)",
        "cloud-cluster-1 (germany, high-performance)",
        "cloud-cluster-2 (germany)",
        "/console",
        "X-FaDO-Bucket",
        &token,
    ] {
        assert!(
            demo.banner.contains(want),
            "banner lacks {want:?}:\n{}",
            demo.banner
        );
    }

    // The console URL it prints leads to the console (driven in a browser
    // by `console.rs`); without scripts, its page says where the API is.
    let page = http()
        .get(format!("{}/console/", demo.api))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("/console/app.js"), "{page}");
    assert!(page.contains("/api/openapi.json"), "{page}");

    // The testbed is registered as the thesis had it.
    let (s, clusters) = api(&demo, &token, "/api/clusters").await;
    assert_eq!(s, 200, "{clusters}");
    let mut names: Vec<&str> = clusters["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["cloud-cluster-1", "cloud-cluster-2", "hpc-cluster"]);

    // Opening the console shows that testbed and its bucket.
    crate::console::browser_test_at(
        &demo.api,
        &token,
        "test_the_demo_shows_its_testbed",
        serde_json::json!([]),
        || setup.logs(),
    )
    .await;

    // Invocations naming the bucket run on a cluster that holds it.
    let held = holders(&demo, &token).await;
    assert!(held.contains(&"hpc-cluster".to_string()), "{held:?}");
    for _ in 0..6 {
        let r = http()
            .get(format!("{}/nodeinfo", demo.api))
            .header("X-FaDO-Bucket", "images")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let upstream = r.headers()["x-fado-upstream"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        let cluster = body["cluster"].as_str().unwrap().to_string();
        assert_eq!(upstream, format!("{cluster}-spin"), "{body}");
        // A replica may have become ready since `held` was read.
        let now = holders(&demo, &token).await;
        assert!(
            now.contains(&cluster),
            "served by {cluster}, bucket held by {now:?}"
        );
    }
    // The image function makes a thumbnail of the sample from local storage.
    let r = http()
        .get(format!(
            "{}/image?bucket=images&key=sample.png&store=false",
            demo.api
        ))
        .header("X-FaDO-Bucket", "images")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let local = r
        .headers()
        .get("x-image-local")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(local.as_deref(), Some("true"));

    // While it runs, the checks below see its processes and its listeners
    // (so they cannot pass by seeing nothing): the demo itself, the
    // orchestrator, and a function host and an S3 server per cluster.
    let data_dir = setup.data.path().display().to_string();
    let running = processes_mentioning(setup.data.path());
    assert!(running.len() >= 8, "demo processes seen: {running:?}");
    for p in &demo.ports {
        assert!(
            listeners_on(*p)
                .iter()
                .any(|(_, cmd)| cmd.contains(&data_dir)),
            "no demo process seen listening on port {p}"
        );
    }

    // No secret shows on a command line (any local user can read those),
    // in a log, or in an API answer.
    let secrets: Vec<(&str, String)> = ["admin-token", "encryption-key", "storage-secret-key"]
        .into_iter()
        .map(|f| {
            let v = std::fs::read_to_string(setup.data.path().join(f))
                .unwrap_or_else(|e| panic!("the demo keeps {f}: {e}"));
            (f, v.trim().to_string())
        })
        .collect();
    let mut logs = String::new();
    for e in std::fs::read_dir(setup.data.path().join("logs"))
        .unwrap()
        .flatten()
    {
        logs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    assert!(!logs.is_empty(), "the demo wrote no logs");
    let mut answers = String::new();
    for path in [
        "/api/storage-deployments",
        "/api/faas-deployments",
        "/api/clusters",
        "/api/settings",
        "/api/resources",
        "/api/jobs",
    ] {
        let (s, v) = api(&demo, &token, path).await;
        assert_eq!(s, 200, "{path}: {v}");
        answers.push_str(&v.to_string());
    }
    for (name, value) in &secrets {
        assert!(value.len() >= 16, "{name} is too short to search for");
        let shown: Vec<_> = all_processes()
            .into_iter()
            .filter(|(_, cmd)| cmd.contains(value.as_str()))
            .collect();
        assert!(shown.is_empty(), "{name} on a command line: {shown:?}");
        assert!(!logs.contains(value.as_str()), "{name} in a log");
        assert!(!answers.contains(value.as_str()), "{name} in an API answer");
    }

    // Ctrl-C stops everything it started: no process of it is left and
    // none of its ports is still listened on by one of them. (Other tests
    // run alongside and may be handed a port the demo just freed, so a
    // port that answers is only a failure when a demo process holds it.)
    let status = demo.interrupt().unwrap();
    assert!(status.success(), "fado demo exited with {status}");
    let left = processes_mentioning(setup.data.path());
    assert!(
        left.is_empty(),
        "processes of the demo still run after it stopped: {left:?}\n{}",
        setup.logs()
    );
    for p in &demo.ports {
        let held_by_demo: Vec<_> = listeners_on(*p)
            .into_iter()
            .filter(|(_, cmd)| cmd.contains(&data_dir))
            .collect();
        assert!(
            held_by_demo.is_empty(),
            "port {p} is still listened on by the demo: {held_by_demo:?}\n{}",
            setup.logs()
        );
    }

    // A second run on the same data directory finds the first one's state.
    let demo = setup.start().unwrap();
    assert_eq!(setup.token(), token, "the admin token changed");
    let (s, clusters) = api(&demo, &token, "/api/clusters").await;
    assert_eq!(
        (s, clusters["items"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    let r = http()
        .get(format!(
            "{}/api/buckets/images/objects/sample.png",
            demo.api
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let png = r.bytes().await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
