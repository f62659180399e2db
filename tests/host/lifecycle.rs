//! Process lifecycle: graceful drain on SIGTERM, the compile cache, metrics.

use std::time::Duration;

use harness::upstream::upstream;
use harness::{Fado, FadoOptions, http, probe_app};

fn app() -> harness::AppDir {
    probe_app(&[format!("http://127.0.0.1:{}", upstream().port())])
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let mut fado = Fado::start(&app()).unwrap();
    let url = fado.url("/x/fetch");
    let slow = format!("http://{}/slow?ms=2000", upstream());
    let request = tokio::spawn(async move { http().get(url).query(&[("url", slow)]).send().await });
    // Signal only once the request is inside the component.
    let inside = harness::eventually(Duration::from_secs(20), || async {
        fado.metric("fado_component_invocations_total", "probe")
            .await
            .filter(|l| l.ends_with(" 1"))
    })
    .await;
    assert!(inside.is_some(), "the request never reached the component");
    let code = tokio::task::spawn_blocking(move || {
        let code = fado.terminate(Duration::from_secs(20)).unwrap();
        (code, fado.log())
    });
    let response = request
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "slow done");
    let (code, log) = code.await.unwrap();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("draining"), "{log}");
}

#[tokio::test]
async fn compiled_components_are_cached_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let app = app();
    let opts = || FadoOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let first = Fado::start_with(&app, opts()).unwrap();
    assert!(
        first.log().contains("compiled component"),
        "{}",
        first.log()
    );
    drop(first);
    let compiled = std::fs::read_dir(cache.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("cwasm".as_ref()))
        .count();
    assert_eq!(compiled, 1, "one compiled component in the cache");
    let second = Fado::start_with(&app, opts()).unwrap();
    let log = second.log();
    assert!(log.contains("using cached compiled component"), "{log}");
    assert_eq!(
        log.matches("compiled component").count(),
        log.matches("using cached compiled component").count(),
        "nothing recompiled:\n{log}"
    );
    assert_eq!(
        http().get(second.url("/x")).send().await.unwrap().status(),
        200
    );
}

/// Hosts starting together on one cache (the demo's clusters) compile a
/// component once; the others wait and load it.
#[tokio::test]
async fn hosts_starting_together_compile_a_component_once() {
    let cache = tempfile::tempdir().unwrap();
    let app = app();
    let hosts: Vec<Fado> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    Fado::start_with(
                        &app,
                        FadoOptions {
                            cache_dir: Some(cache.path().to_path_buf()),
                            ..Default::default()
                        },
                    )
                    .unwrap()
                })
            })
            .collect();
        starts.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let logs: Vec<String> = hosts.iter().map(Fado::log).collect();
    let compiles = logs
        .iter()
        .map(|l| l.matches("compiled component").count() - l.matches("using cached").count())
        .sum::<usize>();
    assert_eq!(compiles, 1, "{logs:#?}");
    for fado in &hosts {
        assert_eq!(
            http().get(fado.url("/x")).send().await.unwrap().status(),
            200
        );
    }
}

#[tokio::test]
async fn metrics_count_invocations_per_component_and_trigger() {
    let fado = Fado::start(&app()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            http().get(fado.url("/x")).send().await.unwrap().status(),
            200
        );
    }
    let line = fado
        .metric("fado_component_invocations_total", "probe")
        .await
        .expect("an invocation counter for the probe");
    assert!(
        line.contains("component=\"probe\"") && line.contains("trigger=\"http\""),
        "{line}"
    );
    assert!(line.ends_with(" 3"), "{line}");
    let histogram = fado
        .metric("fado_component_duration_seconds_count", "probe")
        .await;
    assert!(
        histogram.is_some_and(|l| l.ends_with(" 3")),
        "a latency histogram"
    );
}

/// `/count` answers how many requests its instance has served.
async fn served(fado: &Fado) -> u64 {
    let r = http().get(fado.url("/count")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["served"].as_u64().expect("a count")
}

#[tokio::test]
async fn instances_are_fresh_per_request_unless_the_component_opts_into_reuse() {
    // Spin's behaviour by default: every request gets a fresh instance.
    let fado = Fado::start(&app()).unwrap();
    for _ in 0..3 {
        assert_eq!(served(&fado).await, 1);
    }
    drop(fado);

    let manifest =
        harness::probe_manifest(&[]) + "[component.probe.tool.fado]\ninstance_reuse = 3\n";
    let reusing = harness::AppDir::new(&manifest).unwrap();
    let fado = Fado::start(&reusing).unwrap();
    // One instance serves three requests in turn, then a fresh one follows.
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(served(&fado).await);
    }
    assert_eq!(counts, [1, 2, 3, 1]);
    // An instance that trapped is not kept: the next request starts afresh.
    assert_eq!(served(&fado).await, 2);
    let trap = http().get(fado.url("/trap")).send().await.unwrap();
    assert_eq!(trap.status(), 500);
    assert_eq!(served(&fado).await, 1);
}
