//! Replication under crashes and concurrency: a host killed with SIGKILL in
//! the middle of a copy, and several hosts' replicators sharing one ledger.

use std::time::Duration;

use harness::eventually;
use harness::garage::data;
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use serde_json::{Value, json};

use crate::replication::{platform, start};

async fn upload(o: &Orchestrator, bucket: &str, key: &str, bytes: Vec<u8>) {
    let resp = harness::http()
        .put(o.fado.url(&format!("/api/buckets/{bucket}/objects/{key}")))
        .bearer_auth(ADMIN_TOKEN)
        .body(bytes)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
    let status = resp.status().as_u16();
    assert_eq!(
        status,
        200,
        "PUT {key}: {}",
        resp.text().await.unwrap_or_default()
    );
}

async fn jobs(o: &Orchestrator, query: &str) -> Vec<Value> {
    let (s, b) = o
        .api("GET", &format!("/api/jobs?limit=1000&{query}"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

/// Waits until no job is queued or running (up to `timeout`), then checks
/// none is dead; returns every job.
pub(crate) async fn settled_jobs(o: &Orchestrator, timeout: Duration) -> Vec<Value> {
    let settled = eventually(timeout, || async {
        let all = jobs(o, "").await;
        all.iter()
            .all(|j| j["state"] == "done" || j["state"] == "dead")
            .then_some(all)
    })
    .await
    .unwrap_or_else(|| panic!("jobs still queued or running:\n{}", o.fado.log()));
    let dead: Vec<_> = settled.iter().filter(|j| j["state"] == "dead").collect();
    assert!(dead.is_empty(), "dead jobs: {dead:?}");
    settled
}

async fn ready_bucket(o: &Orchestrator, bucket: &str, replicas: i64) {
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "allowed_zones": ["germany"],
               "target_replicas": replicas}),
    )
    .await;
    let ready = eventually(Duration::from_secs(60), || async {
        let states = o.replica_states(bucket).await;
        (states.len() == replicas as usize && states.iter().all(|(_, s)| s == "ready"))
            .then_some(())
    })
    .await;
    assert!(ready.is_some(), "replicas not ready:\n{}", o.fado.log());
}

/// The host dies (SIGKILL) while its replicator copies a large object in
/// parts; after a restart the job's lease runs out, the next claim copies
/// the object again from scratch, and the replica ends byte-identical.
#[tokio::test(flavor = "multi_thread")]
async fn a_replicator_killed_mid_copy_leaves_identical_copies() {
    let mut o = start().await;
    let g = platform(&o).await;
    let bucket = "crash-demo";
    ready_bucket(&o, bucket, 1).await;
    let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
    let replica = b["replicas"][0]["storage"].as_str().unwrap().to_string();
    let replica_garage = &g[replica[1..].parse::<usize>().unwrap() - 1];

    let big = data(42, 160 << 20);
    upload(&o, bucket, "big.bin", big.clone()).await;
    let running = eventually(Duration::from_secs(30), || async {
        jobs(&o, "state=running")
            .await
            .into_iter()
            .find(|j| j["kind"] == "copy_object")
    })
    .await
    .unwrap_or_else(|| panic!("the copy never started:\n{}", o.fado.log()));
    tokio::task::block_in_place(|| o.crash_and_restart()).expect("restarting fado");
    assert!(
        replica_garage.get(bucket, "big.bin").await.is_none(),
        "the copy finished before the kill; the test proves nothing (make the object larger)"
    );

    // The dead host's lease (60 s) must run out before another claim.
    let done = eventually(Duration::from_secs(150), || async {
        let (_, j) = o
            .api("GET", &format!("/api/jobs/{}", running["id"]), None)
            .await;
        (j["state"] == "done").then_some(j)
    })
    .await
    .unwrap_or_else(|| panic!("the interrupted job was not finished:\n{}", o.fado.log()));
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["bytes_copied"], 160 << 20, "{done}");
    let copy = replica_garage
        .get(bucket, "big.bin")
        .await
        .expect("the copy");
    assert!(copy == big, "the replica's copy differs from the master's");
}

/// Three hosts serve the same deployment: their replicators claim from one
/// ledger at once, and every job runs exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn several_replicators_share_the_ledger_without_stepping_on_each_other() {
    let o = start().await;
    let g = platform(&o).await;
    let _peers = tokio::task::block_in_place(|| {
        [
            o.peer().expect("a second fado"),
            o.peer().expect("a third fado"),
        ]
    });
    let bucket = "many-hands";
    ready_bucket(&o, bucket, 2).await;
    let objects: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("obj-{i:02}"), data(i as u8, 20_000 + 997 * i)))
        .collect();
    for (k, v) in &objects {
        upload(&o, bucket, k, v.clone()).await;
    }
    for garage in &g {
        let all = eventually(Duration::from_secs(90), || async {
            (garage.keys(bucket).await.len() == objects.len()).then_some(())
        })
        .await;
        assert!(
            all.is_some(),
            "{} did not get every object:\n{}",
            garage.name,
            o.fado.log()
        );
        for (k, v) in &objects {
            assert!(
                garage.get(bucket, k).await.as_deref() == Some(v.as_slice()),
                "{}: {k}",
                garage.name
            );
        }
    }
    let copies: Vec<Value> = jobs(&o, "state=done")
        .await
        .into_iter()
        .filter(|j| j["kind"] == "copy_object")
        .collect();
    assert_eq!(copies.len(), 2 * objects.len(), "{copies:?}");
    for j in &copies {
        assert_eq!(j["attempts"], 1, "a job ran twice or failed: {j}");
        assert_eq!(j["bytes_copied"], j["object_size"], "{j}");
    }
}

/// Trials of `kill -9` during replication (`FADO_KILL_TRIALS`, default 2;
/// docs/reliability.md records 20). Each trial has a bucket of its own with
/// two replicas (a killed host's copy jobs hold their bucket's targets until
/// their lease runs out, so a shared bucket would leave later trials
/// nothing in flight to kill). It uploads a large object (a multipart copy)
/// and small ones, overwrites an object of the trial before, and kills the
/// host while a copy of its bucket is running, a few milliseconds later
/// each trial; a new host starts at once, as a supervisor would restart it.
/// Afterwards every acknowledged object is on every replica, byte for byte
/// in its last acknowledged version, and every job is done: none lost,
/// none dead.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_replication_loses_nothing() {
    let trials: usize = std::env::var("FADO_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut o = start().await;
    let g = platform(&o).await;
    let started = std::time::Instant::now();
    // (bucket, key) → bytes of its last acknowledged upload.
    let mut acknowledged = std::collections::BTreeMap::new();
    let mut running_at_kill = Vec::new();
    for t in 0..trials {
        let bucket = format!("kill-{t:02}");
        ready_bucket(&o, &bucket, 2).await;
        let mut batch = Vec::new();
        for i in 0..6 {
            batch.push((
                bucket.clone(),
                format!("small-{i}"),
                data((t * 7 + i) as u8, 3_000 + 9_973 * i),
            ));
        }
        if t > 0 {
            // A new version of an object the last trial wrote.
            batch.push((
                format!("kill-{:02}", t - 1),
                "small-0".to_string(),
                data(200 + t as u8, 4_321 + t),
            ));
        }
        // Last, so that its copy is still running when the uploads end.
        batch.push((bucket.clone(), "large".to_string(), data(t as u8, 20 << 20)));
        for (b, k, v) in &batch {
            upload(&o, b, k, v.clone()).await;
            acknowledged.insert((b.clone(), k.clone()), v.clone());
        }
        // A copy running, or (on a busy machine the copies may all end
        // between two looks) none left to run: the kill then lands after
        // this trial's replication, and the report counts 0.
        let copying = eventually(Duration::from_secs(20), || async {
            let all = jobs(&o, &format!("bucket={bucket}")).await;
            let running = all.iter().filter(|j| j["state"] == "running").count();
            let open = all
                .iter()
                .any(|j| j["state"] == "queued" || j["state"] == "running");
            (running > 0 || !open).then_some(running)
        })
        .await
        .unwrap_or_else(|| panic!("the copies of {bucket} never ran:\n{}", o.fado.log()));
        tokio::time::sleep(Duration::from_millis(5 * (t as u64 % 10))).await;
        running_at_kill.push(copying);
        tokio::task::block_in_place(|| o.crash_and_restart()).expect("restarting fado");
    }
    let killed_for = started.elapsed();

    // The dead hosts' leases (60 s) run out; the last host finishes.
    let settled = settled_jobs(&o, Duration::from_secs(240)).await;
    let done_after = started.elapsed() - killed_for;
    for garage in &g {
        for ((b, k), v) in &acknowledged {
            assert!(
                garage.get(b, k).await.as_deref() == Some(v.as_slice()),
                "{}: {b}/{k} is not its last acknowledged version",
                garage.name
            );
        }
    }
    let again = settled
        .iter()
        .filter(|j| j["attempts"].as_i64() > Some(1))
        .count();
    eprintln!(
        "kill -9 during replication: {trials} trials in {:.0} s, copy jobs running at each kill \
         {:?}; {} objects ({} of 20 MiB) on 3 copies byte-identical, {} jobs done ({} run again \
         after a kill), 0 dead, all done {:.0} s after the last kill",
        killed_for.as_secs_f64(),
        running_at_kill,
        acknowledged.len(),
        trials,
        settled.len(),
        again,
        done_after.as_secs_f64()
    );
}

/// PostgreSQL stops (immediate shutdown: every session cut, as in a crash)
/// for 4 s in the middle of uploads, API reads and API writes, then starts
/// again. While it is down every answer is a 503 with a JSON error body
/// (no 500, no dropped connection); no write the API acknowledged is lost;
/// and service resumes by itself, replication included.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_restart_under_load_loses_no_acknowledged_write() {
    use std::sync::Mutex;
    use std::time::Instant;

    // Durable, as in production: the tests' shared server turns off fsync
    // and synchronous commit, trading its last commits in a crash for speed.
    let mut pg = tokio::task::block_in_place(|| harness::Postgres::start_with(true)).unwrap();
    let database = pg.create_database().await.unwrap();
    let o = Orchestrator::start_with(
        database,
        harness::orchestrator::Options {
            replicator: true,
            postgres_port: Some(pg.port),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let g = platform(&o).await;
    let bucket = "pg-restart";
    ready_bucket(&o, bucket, 1).await;

    let load_for = Duration::from_secs(12);
    let (down_at, up_at) = (Duration::from_secs(3), Duration::from_secs(7));
    let started = Instant::now();
    // (seconds since start, what, status, JSON error code, the body's start)
    type Answer = (f64, &'static str, u16, Option<String>, String);
    let answers: Mutex<Vec<Answer>> = Mutex::new(Vec::new());
    let uploads: Mutex<Vec<(String, Vec<u8>)>> = Mutex::new(Vec::new());
    let clusters: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let client = harness::http();
    let note = |what: &'static str, status: u16, body: &[u8]| {
        let code = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["error"]["code"].as_str().map(str::to_string));
        let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        answers
            .lock()
            .unwrap()
            .push((started.elapsed().as_secs_f64(), what, status, code, start));
    };
    let send = |req: reqwest::RequestBuilder| async {
        match req.bearer_auth(ADMIN_TOKEN).send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.bytes().await.unwrap_or_default().to_vec())
            }
            Err(e) => (0, format!("{e:?}").into_bytes()),
        }
    };
    let uploader = || async {
        while started.elapsed() < load_for {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let key = format!("obj-{n:04}");
            let size = if n % 10 == 9 {
                9 << 20
            } else {
                2_000 + 3_001 * (n % 17)
            };
            let bytes = data(n as u8, size);
            let (s, body) = send(
                client
                    .put(o.fado.url(&format!("/api/buckets/{bucket}/objects/{key}")))
                    .body(bytes.clone()),
            )
            .await;
            note("upload", s, &body);
            if s == 200 {
                uploads.lock().unwrap().push((key, bytes));
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let reader = || async {
        while started.elapsed() < load_for {
            let (s, body) = send(client.get(o.fado.url(&format!("/api/buckets/{bucket}")))).await;
            note("read", s, &body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let writer = || async {
        let mut n = 0;
        while started.elapsed() < load_for {
            n += 1;
            let name = format!("load-{n}");
            let (s, body) = send(
                client
                    .post(o.fado.url("/api/clusters"))
                    .json(&json!({"name": name, "zones": ["germany"]})),
            )
            .await;
            note("write", s, &body);
            if s == 201 {
                clusters.lock().unwrap().push(name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let outage = async {
        tokio::time::sleep(down_at).await;
        tokio::task::block_in_place(|| pg.stop());
        tokio::time::sleep(up_at - down_at).await;
        tokio::task::block_in_place(|| pg.resume()).expect("restarting PostgreSQL");
    };
    tokio::join!(outage, uploader(), uploader(), reader(), writer());

    let answers = answers.into_inner().unwrap();
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(_, _, s, code, _)| !(200..300).contains(s) && (*s != 503 || code.is_none()))
        .collect();
    assert!(
        wrong.is_empty(),
        "answers other than success or a 503 with a JSON error: {:?}\n{}",
        &wrong[..wrong.len().min(10)],
        o.fado.log()
    );
    let (down, up) = (down_at.as_secs_f64(), up_at.as_secs_f64());
    let unavailable = answers.iter().filter(|a| a.2 == 503).count();
    let mut codes: Vec<&str> = answers
        .iter()
        .filter(|a| a.2 == 503)
        .filter_map(|a| a.3.as_deref())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let mut resumed = Vec::new();
    for what in ["upload", "read", "write"] {
        let first_ok = answers
            .iter()
            .find(|(t, w, s, ..)| *w == what && *t > up && (200..300).contains(s))
            .unwrap_or_else(|| panic!("no {what} succeeded after PostgreSQL came back"));
        resumed.push((what, first_ok.0 - up));
    }

    // Nothing acknowledged is lost: the catalog has every cluster and
    // object, and both copies hold every object byte for byte.
    let clusters = clusters.into_inner().unwrap();
    for name in &clusters {
        let (s, b) = o.api("GET", &format!("/api/clusters/{name}"), None).await;
        assert_eq!(s, 200, "acknowledged cluster {name} is gone: {b}");
    }
    let uploads = uploads.into_inner().unwrap();
    let listed: std::collections::HashSet<String> = o
        .object_listing(bucket)
        .await
        .into_iter()
        .map(|(k, ..)| k)
        .collect();
    for (k, _) in &uploads {
        assert!(
            listed.contains(k),
            "acknowledged upload {k} is not in the catalog"
        );
    }
    let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
    let replica = b["replicas"][0]["storage"].as_str().unwrap().to_string();
    let copies = [&g[0], &g[replica[1..].parse::<usize>().unwrap() - 1]];
    for garage in copies {
        let complete = eventually(Duration::from_secs(120), || async {
            let keys = garage.keys(bucket).await;
            uploads
                .iter()
                .all(|(k, _)| keys.iter().any(|(x, _)| x == k))
                .then_some(())
        })
        .await;
        assert!(
            complete.is_some(),
            "{} lacks acknowledged uploads:\n{}",
            garage.name,
            o.fado.log()
        );
    }
    for garage in copies {
        for (k, v) in &uploads {
            assert!(
                garage.get(bucket, k).await.as_deref() == Some(v.as_slice()),
                "{}: {k} differs",
                garage.name
            );
        }
    }
    eprintln!(
        "PostgreSQL down from {down:.0} s to {up:.0} s of {:.0} s of load: {} answers, {} of them \
         503 (codes {codes:?}), no other failure; service back after PostgreSQL: {:?} s; \
         acknowledged and kept: {} uploads, {} clusters",
        load_for.as_secs_f64(),
        answers.len(),
        unavailable,
        resumed
            .iter()
            .map(|(w, s)| format!("{w} {s:.2}"))
            .collect::<Vec<_>>(),
        uploads.len(),
        clusters.len()
    );
}
