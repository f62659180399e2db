//! The planner against real PostgreSQL and Redis: idempotent rounds, many
//! planners at once, lost wake-ups, and a route table rebuilt when Redis
//! loses it.

use std::time::Duration;

use fado_model::route_keys;
use harness::eventually;
use harness::orchestrator::Orchestrator;
use serde_json::json;

/// Two clusters per zone in `eu` and `us`, each with a FaaS and a storage
/// deployment, and `n` buckets mastered round-robin across them.
async fn world(o: &Orchestrator, buckets: usize) {
    for i in 0..4 {
        let zone = if i < 2 { "eu" } else { "us" };
        o.create(
            "/api/clusters",
            json!({"name": format!("c{i}"), "zones": [zone]}),
        )
        .await;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("f{i}"), "cluster": format!("c{i}"), "platform": "spin",
                   "base_url": format!("http://10.1.0.{i}")}),
        )
        .await;
        // Made-up endpoints: registered unchecked.
        o.create(
            "/api/storage-deployments?verify=false",
            json!({"name": format!("s{i}"), "cluster": format!("c{i}"),
                   "endpoint": format!("http://10.1.0.{i}:3900"), "access_key": "a", "secret_key": "b"}),
        )
        .await;
    }
    for b in 0..buckets {
        o.create(
            "/api/buckets",
            json!({"name": format!("bucket-{b}"), "master_storage": format!("s{}", b % 4),
                   "target_replicas": 1 + b % 3}),
        )
        .await;
    }
}

/// Everything the planner writes, in a comparable form.
async fn planned_state(o: &Orchestrator) -> (Vec<String>, Vec<String>, i64) {
    let db = o.db().await.unwrap();
    let replicas = db
        .query(
            "SELECT b.name || '@' || r.storage_id || ':' || r.state FROM replicas r
             JOIN buckets b ON b.id = r.bucket_id ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let jobs = db
        .query(
            "SELECT kind || ' ' || bucket_name || ' ' || coalesce(storage_id, 0) || ' ' || state
             FROM jobs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let version = db
        .query_one("SELECT routes_version FROM planner_state", &[])
        .await
        .unwrap()
        .get(0);
    (replicas, jobs, version)
}

async fn planned_at(o: &Orchestrator) -> String {
    let db = o.db().await.unwrap();
    db.query_one("SELECT planned_at::text FROM planner_state", &[])
        .await
        .unwrap()
        .get(0)
}

/// Runs a sweep and waits until the planner finished it.
async fn sweep_and_wait(o: &Orchestrator) {
    let before = planned_at(o).await;
    o.sweep().await;
    let done = eventually(Duration::from_secs(10), || async {
        (planned_at(o).await != before).then_some(())
    })
    .await;
    assert!(done.is_some(), "the sweep did not plan:\n{}", o.fado.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn planning_an_unchanged_catalog_changes_nothing() {
    let o = Orchestrator::start().await.unwrap();
    world(&o, 12).await;
    o.settled().await;
    let first = planned_state(&o).await;
    assert!(!first.0.is_empty() && !first.1.is_empty());
    // Every bucket asked for replicas the world can give: none are missing.
    let (_, b) = o
        .api("GET", "/api/buckets?under_replicated=true", None)
        .await;
    assert_eq!(b["items"], json!([]), "{b}");

    // Every route key a router has read is tracked by Redis: an unchanged
    // table must not be rewritten (each write would empty the routers'
    // caches of that key).
    let sets = o.redis.command_calls("set").await.unwrap();
    for _ in 0..3 {
        sweep_and_wait(&o).await;
        assert_eq!(
            planned_state(&o).await,
            first,
            "a sweep over the same catalog"
        );
    }
    assert_eq!(
        o.redis.command_calls("set").await.unwrap(),
        sets,
        "sweeps rewrote unchanged routes (the planner's scripts write with SET)"
    );
    // Redis holds the same version Postgres recorded.
    let mut redis = o.redis.conn().await.unwrap();
    let version: i64 = redis::cmd("HGET")
        .arg(route_keys::VERSION)
        .arg("version")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(version, first.2);
    // One key per bucket, plus `*` (the route over every deployment).
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(route_keys::INDEX)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(names.len(), 13, "{names:?}");
    for name in names {
        let held: Option<String> = redis::cmd("GET")
            .arg(route_keys::route(&name))
            .query_async(&mut redis)
            .await
            .unwrap();
        let route: fado_model::PublishedRoute =
            serde_json::from_str(&held.expect("a route key per indexed name")).unwrap();
        assert_eq!(route.route.bucket, name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn many_planners_at_once_agree() {
    let o = Orchestrator::start().await.unwrap();
    world(&o, 8).await;
    // A burst of wake-ups and sweeps: each runs a planner instance at once.
    for i in 0..20 {
        if i % 2 == 0 {
            o.wake_planner().await
        } else {
            o.sweep().await
        }
    }
    o.settled().await;
    // Let the burst drain, then compare with a quiet single planner.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let burst = planned_state(&o).await;
    sweep_and_wait(&o).await;
    assert_eq!(planned_state(&o).await, burst);

    let db = o.db().await.unwrap();
    let duplicates: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE state IN ('queued', 'running')
             GROUP BY kind, bucket_name, storage_id HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(duplicates, 0);
    // Each bucket has exactly the replicas it asked for.
    let wrong: i64 = db
        .query_one(
            "SELECT count(*) FROM buckets b WHERE b.target_replicas <>
             (SELECT count(*) FROM replicas r WHERE r.bucket_id = b.id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
    assert!(
        !o.fado.log().contains("Redis handler failed"),
        "no planner failed:\n{}",
        o.fado.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_wake_up_is_caught_by_the_next_sweep() {
    let o = Orchestrator::start().await.unwrap();
    world(&o, 2).await;
    o.settled().await;
    // A change written without bumping the generation or waking anyone,
    // as if the wake-up were lost: replicas become ready.
    let db = o.db().await.unwrap();
    db.batch_execute("UPDATE replicas SET state = 'ready'")
        .await
        .unwrap();
    let (_, before) = o.api("GET", "/api/routes", None).await;
    assert_eq!(before["items"][0]["targets"].as_array().unwrap().len(), 1);

    sweep_and_wait(&o).await;
    let (_, after) = o.api("GET", "/api/routes", None).await;
    assert_eq!(
        after["items"][0]["targets"].as_array().unwrap().len(),
        2,
        "{after}"
    );
    assert!(after["version"].as_i64() > before["version"].as_i64());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_that_finds_a_round_under_way_is_not_lost() {
    let o = Orchestrator::start().await.unwrap();
    world(&o, 2).await;
    o.settled().await;
    // This session stands in for a planner in the middle of a round: it
    // holds the planner lock.
    let holder = o.db().await.unwrap();
    holder
        .execute(
            "SELECT pg_advisory_lock($1)",
            &[&fado_model::locks::PLANNER],
        )
        .await
        .unwrap();
    // A change its round did not read, written without a generation bump.
    let db = o.db().await.unwrap();
    db.batch_execute("UPDATE replicas SET state = 'ready'")
        .await
        .unwrap();
    let generation = || async {
        let v: i64 = db
            .query_one("SELECT catalog_generation FROM planner_state", &[])
            .await
            .unwrap()
            .get(0);
        v
    };
    let before = generation().await;
    o.sweep().await;
    // Time for the sweep's planner to find the lock taken and return.
    tokio::time::sleep(Duration::from_secs(1)).await;
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    // What a planner holding the lock does when its round ends: check the
    // generation once more (a wake-up runs exactly that check).
    o.wake_planner().await;
    let planned = eventually(Duration::from_secs(10), || async {
        let (_, routes) = o.api("GET", "/api/routes", None).await;
        (routes["items"][0]["targets"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    assert!(
        planned.is_some(),
        "the sweep asked for while a round held the lock was never planned \
         (generation {before} -> {}):\n{}",
        generation().await,
        o.fado.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_table_is_rebuilt_when_redis_loses_it() {
    let mut o = Orchestrator::start().await.unwrap();
    world(&o, 5).await;
    let routes = o.settled().await;
    let version = routes["version"].as_i64().unwrap();

    // Redis restarts empty (the harness keeps nothing on disk).
    o.redis.restart().unwrap();
    let mut redis = o.redis.conn().await.unwrap();
    let len: i64 = redis::cmd("SCARD")
        .arg(route_keys::INDEX)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 0);

    // The trigger resubscribes; the next wake-up (here: a sweep) rebuilds it.
    let rebuilt = eventually(Duration::from_secs(20), || async {
        o.sweep().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut c = o.redis.conn().await.ok()?;
        let v: Option<i64> = redis::cmd("HGET")
            .arg(route_keys::VERSION)
            .arg("version")
            .query_async(&mut c)
            .await
            .ok()?;
        let len: i64 = redis::cmd("SCARD")
            .arg(route_keys::INDEX)
            .query_async(&mut c)
            .await
            .ok()?;
        let meta: i64 = redis::cmd("EXISTS")
            .arg(route_keys::META)
            .query_async(&mut c)
            .await
            .ok()?;
        (v == Some(version) && len == 5 + 1 && meta == 1).then_some(())
    })
    .await;
    assert!(rebuilt.is_some(), "routes not rebuilt:\n{}", o.fado.log());

    // A version Postgres never made (a restored database) is replaced too.
    let _: () = redis::cmd("HSET")
        .arg(route_keys::VERSION)
        .arg("version")
        .arg(version + 100)
        .query_async(&mut redis)
        .await
        .unwrap();
    sweep_and_wait(&o).await;
    let fixed = eventually(Duration::from_secs(10), || async {
        let mut c = o.redis.conn().await.ok()?;
        let v: i64 = redis::cmd("HGET")
            .arg(route_keys::VERSION)
            .arg("version")
            .query_async(&mut c)
            .await
            .ok()?;
        (v == version).then_some(())
    })
    .await;
    assert!(
        fixed.is_some(),
        "the foreign version stayed:\n{}",
        o.fado.log()
    );
}
