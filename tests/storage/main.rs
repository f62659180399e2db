//! Tests of the S3 test storage itself: single-node Garage instances started
//! by `infra/garage` (through `harness::garage`), driven with `aws-sdk-s3`.
//! The replication tests build on these instances. `s3_server` tests the
//! S3 server embedded in `fado` the same way.

mod s3_server;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use harness::garage::Garage;

/// Two instances are two independent clusters: a bucket and an object
/// written on one are read back byte for byte, listed, and absent from the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_garages_are_independent_s3_stores() -> Result<()> {
    let garages = tokio::task::spawn_blocking(|| Garage::start_many(2)).await??;
    let (a, b) = (&garages[0], &garages[1]);
    assert_ne!(a.endpoint, b.endpoint);
    assert_ne!(a.key_id, b.key_id);
    assert_eq!(a.region, "garage");
    let (s3a, s3b) = (a.client(), b.client());

    // The same bucket name on both, as replicas will have.
    for s3 in [&s3a, &s3b] {
        s3.create_bucket()
            .bucket("images")
            .send()
            .await
            .with_context(|| format!("CreateBucket; log:\n{}", a.log()))?;
    }

    // Larger than Garage's 1 MiB block, so the object spans several blocks;
    // the pattern shows any reordering or corruption.
    let body = harness::upstream::pattern(3 * 1024 * 1024 + 17);
    let put = s3a
        .put_object()
        .bucket("images")
        .key("photos/cat.bin")
        .content_type("application/octet-stream")
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;
    let etag = put
        .e_tag()
        .context("PutObject returned no ETag")?
        .to_string();

    let got = s3a
        .get_object()
        .bucket("images")
        .key("photos/cat.bin")
        .send()
        .await?;
    assert_eq!(got.content_length(), Some(body.len() as i64));
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    let bytes = got.body.collect().await?.into_bytes();
    assert!(
        bytes.as_ref() == body.as_slice(),
        "GET returned {} bytes that differ from the {} PUT",
        bytes.len(),
        body.len()
    );

    let listed = s3a
        .list_objects_v2()
        .bucket("images")
        .prefix("photos/")
        .send()
        .await?;
    let objects: Vec<(&str, i64, &str)> = listed
        .contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap_or_default(),
                o.size().unwrap_or(-1),
                o.e_tag().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        objects,
        [("photos/cat.bin", body.len() as i64, etag.as_str())]
    );

    // The other instance has the bucket but not the object.
    let other = s3b.list_objects_v2().bucket("images").send().await?;
    assert_eq!(other.key_count(), Some(0), "{other:?}");
    let missing = s3b
        .get_object()
        .bucket("images")
        .key("photos/cat.bin")
        .send()
        .await
        .expect_err("the object exists only on the first instance");
    assert!(
        missing
            .as_service_error()
            .is_some_and(|e| e.is_no_such_key()),
        "expected NoSuchKey, got {missing:?}"
    );

    // Keys are per instance: the first instance's key is unknown to the second.
    let foreign = b
        .client_with(&a.key_id, &a.secret)
        .list_buckets()
        .send()
        .await;
    assert!(foreign.is_err(), "a key of {} worked on {}", a.name, b.name);

    // Dropping the fixtures stops the servers and removes their files.
    let dirs: Vec<_> = garages.iter().map(|g| g.dir.clone()).collect();
    let ports: Vec<u16> = garages.iter().map(|g| port_of(&g.endpoint)).collect();
    drop((s3a, s3b));
    tokio::task::spawn_blocking(move || drop(garages)).await?;
    for dir in &dirs {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
    for port in ports {
        assert!(
            std::net::TcpStream::connect_timeout(
                &([127, 0, 0, 1], port).into(),
                Duration::from_secs(1)
            )
            .is_err(),
            "something still listens on the S3 port {port}"
        );
    }
    Ok(())
}

/// Without the Garage binary, `infra/garage start` says how to get it.
#[test]
fn start_without_garage_says_to_install_it() -> Result<()> {
    let empty = tempfile::tempdir()?;
    let out = Command::new(harness::workspace().join("infra/garage"))
        .args(["start", "1"])
        .arg(empty.path().join("instances"))
        .env("FADO_CACHE", empty.path())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start succeeded without Garage");
    assert!(
        stderr.contains("run infra/garage install"),
        "unexpected message: {stderr}"
    );
    assert!(!empty.path().join("instances").exists());
    Ok(())
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("endpoint ends with :PORT")
}
