//! The S3 server embedded in `fado` (`fado s3 serve`, through
//! `harness::s3_server`), driven with `aws-sdk-s3` through every operation
//! FaDO's components use: the storage check and health probe (ListBuckets),
//! the object API and the replicator (buckets, listings with pagination,
//! HEAD/GET/PUT with metadata, ranges and `If-Match`, presigned requests,
//! multipart uploads, server-side copies, deletes).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier,
};
use futures::{StreamExt, TryStreamExt};
use harness::garage::data;
use harness::s3_server::S3Server;
use md5::{Digest, Md5};

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The service error code and HTTP status of a failed SDK call.
fn code_and_status<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (String, u16) {
    (
        e.as_service_error()
            .and_then(|s| s.code())
            .unwrap_or("")
            .to_string(),
        e.raw_response().map_or(0, |r| r.status().as_u16()),
    )
}

async fn start() -> S3Server {
    S3Server::launch(1).await.remove(0)
}

/// Buckets, objects with metadata, ranges, conditions, server-side copies
/// and deletes, as FaDO's components send them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_with_etags_metadata_ranges_and_copies() -> Result<()> {
    let s = start().await;
    let s3 = s.client();
    s3.create_bucket()
        .bucket("images")
        .send()
        .await
        .with_context(|| s.log())?;
    // Creating it again is the owner's no-op error, which FaDO's ensure_bucket accepts.
    let again = s3
        .create_bucket()
        .bucket("images")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&again),
        ("BucketAlreadyOwnedByYou".into(), 409)
    );
    let buckets = s3.list_buckets().send().await?;
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["images"]);
    s3.head_bucket().bucket("images").send().await?;
    let missing = s3.head_bucket().bucket("nope").send().await.unwrap_err();
    assert_eq!(code_and_status(&missing).1, 404);

    // Keys with slashes, spaces and unicode; user metadata and content type.
    let key = "2026/photos of ünïcode ✓/cat+dog %.bin";
    let body = data(9, 300_001);
    let put = s3
        .put_object()
        .bucket("images")
        .key(key)
        .content_type("image/x-test")
        .metadata("fado-source-etag", "abc123")
        .metadata("owner", "zoe")
        .body(ByteStream::from(body.clone()))
        .send()
        .await?;
    let etag = format!("\"{}\"", md5_hex(&body));
    assert_eq!(put.e_tag(), Some(etag.as_str()));

    let head = s3.head_object().bucket("images").key(key).send().await?;
    assert_eq!(head.content_length(), Some(body.len() as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("image/x-test"));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(
        meta,
        HashMap::from([
            ("fado-source-etag".to_string(), "abc123".to_string()),
            ("owner".to_string(), "zoe".to_string())
        ])
    );

    let got = s3.get_object().bucket("images").key(key).send().await?;
    assert_eq!(got.content_length(), Some(body.len() as i64));
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert!(got.body.collect().await?.into_bytes().as_ref() == body.as_slice());

    // A ranged read with If-Match, as FaDO's downloads and copies read parts.
    let part = s3
        .get_object()
        .bucket("images")
        .key(key)
        .range("bytes=100000-199999")
        .if_match(&etag)
        .send()
        .await?;
    assert_eq!(part.content_length(), Some(100_000));
    assert_eq!(
        part.content_range(),
        Some(format!("bytes 100000-199999/{}", body.len()).as_str())
    );
    assert!(part.body.collect().await?.into_bytes().as_ref() == &body[100_000..200_000]);
    let tail = s3
        .get_object()
        .bucket("images")
        .key(key)
        .range("bytes=-10")
        .send()
        .await?;
    assert!(tail.body.collect().await?.into_bytes().as_ref() == &body[body.len() - 10..]);
    let stale = s3
        .get_object()
        .bucket("images")
        .key(key)
        .range("bytes=0-9")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&stale).1, 412, "{stale:?}");
    let outside = s3
        .get_object()
        .bucket("images")
        .key(key)
        .range(format!("bytes={}-", body.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&outside), ("InvalidRange".into(), 416));
    let absent = s3
        .get_object()
        .bucket("images")
        .key("2026")
        .send()
        .await
        .unwrap_err();
    assert!(
        absent
            .as_service_error()
            .is_some_and(|e| e.is_no_such_key()),
        "a path prefix is not an object: {absent:?}"
    );

    // An empty object has the MD5 of nothing.
    let empty = s3
        .put_object()
        .bucket("images")
        .key("empty")
        .body(ByteStream::from_static(b""))
        .send()
        .await?;
    assert_eq!(empty.e_tag(), Some("\"d41d8cd98f00b204e9800998ecf8427e\""));

    // Server-side copy into another bucket, metadata replaced, guarded by
    // the source's ETag, as the replicator copies within one service.
    s3.create_bucket().bucket("replica").send().await?;
    let copied = s3
        .copy_object()
        .bucket("replica")
        .key(key)
        .copy_source(format!("images/{}", urlencode(key)))
        .copy_source_if_match(&etag)
        .metadata_directive(MetadataDirective::Replace)
        .metadata("fado-source-etag", md5_hex(&body))
        .content_type("image/x-test")
        .send()
        .await?;
    assert_eq!(
        copied.copy_object_result().and_then(|r| r.e_tag()),
        Some(etag.as_str())
    );
    let head = s3.head_object().bucket("replica").key(key).send().await?;
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(
        head.metadata().and_then(|m| m.get("fado-source-etag")),
        Some(&md5_hex(&body))
    );
    assert_eq!(head.metadata().and_then(|m| m.get("owner")), None);
    assert_eq!(s.get("replica", key).await, Some(body.clone()));
    let changed = s3
        .copy_object()
        .bucket("replica")
        .key("other")
        .copy_source(format!("images/{}", urlencode(key)))
        .copy_source_if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&changed).1, 412, "{changed:?}");

    // Listing: keys in byte order with sizes and ETags.
    assert_eq!(
        s.listing("images").await,
        [
            (key.to_string(), body.len() as i64, md5_hex(&body)),
            (
                "empty".to_string(),
                0,
                "d41d8cd98f00b204e9800998ecf8427e".to_string()
            ),
        ]
    );

    // Writes need their bucket. Keys are not paths: `a/../empty` is not
    // `empty`, and `2026` is an object beside `2026/…`.
    let no_bucket = s3
        .put_object()
        .bucket("gone")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&no_bucket), ("NoSuchBucket".into(), 404));
    s.put("images", "a/../empty", b"x".to_vec()).await;
    assert_eq!(s.get("images", "empty").await, Some(Vec::new()));
    assert_eq!(s.get("images", "a/../empty").await, Some(b"x".to_vec()));
    s.put("images", "2026", b"x".to_vec()).await;
    assert_eq!(s.get("images", "2026").await, Some(b"x".to_vec()));
    assert!(s.get("images", key).await == Some(body.clone()));
    for k in ["a/../empty", "2026"] {
        s3.delete_object().bucket("images").key(k).send().await?;
    }

    // Deletes: one object, several (absent keys are fine), then the bucket,
    // which must be empty first.
    let not_empty = s3
        .delete_bucket()
        .bucket("images")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&not_empty), ("BucketNotEmpty".into(), 409));
    s3.delete_object()
        .bucket("images")
        .key("empty")
        .send()
        .await?;
    s3.delete_object()
        .bucket("images")
        .key("never-was")
        .send()
        .await?;
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key(key).build()?)
        .objects(ObjectIdentifier::builder().key("never-was").build()?)
        .quiet(true)
        .build()?;
    let out = s3
        .delete_objects()
        .bucket("images")
        .delete(delete)
        .send()
        .await?;
    assert!(out.errors().is_empty(), "{out:?}");
    assert_eq!(s.listing("images").await, []);
    // A path prefix of a deleted key is a key like any other.
    s.put("images", "2026", b"now a file".to_vec()).await;
    s3.delete_object()
        .bucket("images")
        .key("2026")
        .send()
        .await?;
    s3.delete_bucket().bucket("images").send().await?;
    let gone = s3.head_bucket().bucket("images").send().await.unwrap_err();
    assert_eq!(code_and_status(&gone).1, 404);
    Ok(())
}

/// A multipart upload of several parts gets S3's ETag (MD5 of the parts'
/// MD5s, `-N`) and keeps its metadata; parts copied server-side work too;
/// an aborted upload leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_have_s3_etags() -> Result<()> {
    let s = start().await;
    let s3 = s.client();
    s3.create_bucket().bucket("big").send().await?;
    // An object written first with a checksum (the SDK adds a CRC32), then
    // overwritten by a multipart upload: reads must not carry the old checksum.
    s.put("big", "dir/large file.bin", data(1, 1000)).await;

    let parts: Vec<Vec<u8>> = vec![data(2, 5 << 20), data(3, 5 << 20), data(4, 1_234_567)];
    let upload = s3
        .create_multipart_upload()
        .bucket("big")
        .key("dir/large file.bin")
        .content_type("application/x-big")
        .metadata("fado-source-etag", "m-1")
        .send()
        .await?;
    let id = upload.upload_id().context("no upload id")?;
    // A part that does not match its Content-MD5 is refused, like a whole
    // object (the part is sent again properly below).
    let wrong = s3
        .upload_part()
        .bucket("big")
        .key("dir/large file.bin")
        .upload_id(id)
        .part_number(1)
        .content_md5(base64_md5(b"something else"))
        .body(ByteStream::from(parts[0].clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&wrong), ("BadDigest".into(), 400));
    // Parts go up concurrently, as the replicator sends them.
    let sent: Vec<CompletedPart> = futures::stream::iter(parts.iter().enumerate())
        .map(|(i, p)| {
            let s3 = s3.clone();
            async move {
                let n = i as i32 + 1;
                let out = s3
                    .upload_part()
                    .bucket("big")
                    .key("dir/large file.bin")
                    .upload_id(id)
                    .part_number(n)
                    .body(ByteStream::from(p.clone()))
                    .send()
                    .await?;
                assert_eq!(out.e_tag(), Some(format!("\"{}\"", md5_hex(p)).as_str()));
                Ok::<_, anyhow::Error>(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .build(),
                )
            }
        })
        .buffer_unordered(3)
        .try_collect::<Vec<_>>()
        .await?;
    let mut sent = sent;
    sent.sort_by_key(|p| p.part_number());
    let done = s3
        .complete_multipart_upload()
        .bucket("big")
        .key("dir/large file.bin")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(sent))
                .build(),
        )
        .send()
        .await?;
    let mut md5s = Vec::new();
    for p in &parts {
        md5s.extend_from_slice(&Md5::digest(p));
    }
    let expected = format!("\"{}-3\"", md5_hex(&md5s));
    assert_eq!(done.e_tag(), Some(expected.as_str()));
    let whole: Vec<u8> = parts.concat();
    let head = s3
        .head_object()
        .bucket("big")
        .key("dir/large file.bin")
        .send()
        .await?;
    assert_eq!(head.e_tag(), Some(expected.as_str()));
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.content_type(), Some("application/x-big"));
    assert_eq!(
        head.metadata().and_then(|m| m.get("fado-source-etag")),
        Some(&"m-1".to_string())
    );
    assert!(
        s.get("big", "dir/large file.bin").await == Some(whole.clone()),
        "the assembled object differs"
    );
    assert_eq!(
        s.listing("big").await,
        [(
            "dir/large file.bin".to_string(),
            whole.len() as i64,
            expected.trim_matches('"').to_string()
        )]
    );

    // UploadPartCopy: an object assembled from ranges of another on the server.
    let upload = s3
        .create_multipart_upload()
        .bucket("big")
        .key("copy")
        .send()
        .await?;
    let id = upload.upload_id().context("no upload id")?;
    let mut copied = Vec::new();
    for (n, range) in [(1, (0, (5 << 20) - 1)), (2, (5 << 20, whole.len() - 1))] {
        let out = s3
            .upload_part_copy()
            .bucket("big")
            .key("copy")
            .upload_id(id)
            .part_number(n)
            .copy_source("big/dir/large%20file.bin")
            .copy_source_range(format!("bytes={}-{}", range.0, range.1))
            .copy_source_if_match(&expected)
            .send()
            .await?;
        copied.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(
                    out.copy_part_result()
                        .and_then(|r| r.e_tag())
                        .map(str::to_string),
                )
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("big")
        .key("copy")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(copied))
                .build(),
        )
        .send()
        .await?;
    assert!(s.get("big", "copy").await == Some(whole.clone()));

    // An aborted upload leaves no object.
    let upload = s3
        .create_multipart_upload()
        .bucket("big")
        .key("aborted")
        .send()
        .await?;
    let id = upload.upload_id().context("no upload id")?;
    s3.upload_part()
        .bucket("big")
        .key("aborted")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(data(5, 1000)))
        .send()
        .await?;
    s3.abort_multipart_upload()
        .bucket("big")
        .key("aborted")
        .upload_id(id)
        .send()
        .await?;
    assert_eq!(s.get("big", "aborted").await, None);
    Ok(())
}

/// Presigned GET and PUT, as the replicator pipes bytes between services:
/// payload unsigned, metadata and `Content-MD5` in signed headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_requests_work_and_content_md5_is_checked() -> Result<()> {
    let s = start().await;
    let s3 = s.client();
    s3.create_bucket().bucket("pipe").send().await?;
    let body = data(6, 2 << 20);
    let config = PresigningConfig::expires_in(Duration::from_secs(300))?;
    let put = s3
        .put_object()
        .bucket("pipe")
        .key("a b/ü.bin")
        .metadata("fado-source-etag", "src")
        .content_md5(base64_md5(&body))
        .content_length(body.len() as i64)
        .presigned(config.clone())
        .await?;
    let http = harness::http();
    let mut req = http.put(put.uri()).body(body.clone());
    // reqwest sets Content-Length from the body, as FaDO's pipe sets it.
    for (k, v) in put
        .headers()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
    {
        req = req.header(k, v);
    }
    let answer = req.send().await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    assert_eq!(
        answer.headers()["etag"].to_str()?,
        format!("\"{}\"", md5_hex(&body))
    );

    let get = s3
        .get_object()
        .bucket("pipe")
        .key("a b/ü.bin")
        .range("bytes=10-19")
        .if_match(format!("\"{}\"", md5_hex(&body)))
        .presigned(config.clone())
        .await?;
    let mut req = http.get(get.uri());
    for (k, v) in get.headers() {
        req = req.header(k, v);
    }
    let answer = req.send().await?;
    assert_eq!(answer.status(), 206);
    assert_eq!(answer.bytes().await?.as_ref(), &body[10..20]);
    let head = s3
        .head_object()
        .bucket("pipe")
        .key("a b/ü.bin")
        .send()
        .await?;
    assert_eq!(
        head.metadata().and_then(|m| m.get("fado-source-etag")),
        Some(&"src".to_string())
    );

    // A body that does not match its Content-MD5 is refused and leaves the
    // object as it was.
    let wrong = s3
        .put_object()
        .bucket("pipe")
        .key("a b/ü.bin")
        .content_md5(base64_md5(b"something else"))
        .body(ByteStream::from(data(7, 1000)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&wrong), ("BadDigest".into(), 400));
    assert!(s.get("pipe", "a b/ü.bin").await == Some(body.clone()));

    // A presigned URL whose signature was tampered with is refused.
    let uri = get.uri().to_string();
    let at = uri.find("X-Amz-Signature=").context("no signature")? + "X-Amz-Signature=".len();
    let tampered = format!("{}{}{}", &uri[..at], "0".repeat(64), &uri[at + 64..]);
    let mut req = http.get(tampered);
    for (k, v) in get.headers() {
        req = req.header(k, v);
    }
    let answer = req.send().await?;
    assert_eq!(answer.status(), 403);
    Ok(())
}

/// ListObjectsV2 pages: more than 1000 keys in byte order, continuation
/// tokens, small max-keys, prefixes and start-after, as FaDO's listings use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_paginate_in_key_order() -> Result<()> {
    let s = start().await;
    let s3 = s.client();
    s3.create_bucket().bucket("many").send().await?;
    let mut keys: Vec<String> = (0..1100).map(|i| format!("k/{i:05}")).collect();
    keys.extend(["Z", "a", "k-", "é", "k/ä"].map(String::from));
    futures::stream::iter(keys.clone())
        .map(|k| {
            let s3 = s3.clone();
            async move {
                s3.put_object()
                    .bucket("many")
                    .key(&k)
                    .body(ByteStream::from(k.clone().into_bytes()))
                    .send()
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    keys.sort(); // byte order, as S3 lists

    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("many")
            .set_continuation_token(token.take())
            .send()
            .await?;
        pages += 1;
        assert!(page.contents().len() <= 1000);
        for o in page.contents() {
            let key = o.key().unwrap_or_default().to_string();
            assert_eq!(o.size(), Some(key.len() as i64));
            assert_eq!(
                o.e_tag(),
                Some(format!("\"{}\"", md5_hex(key.as_bytes())).as_str())
            );
            listed.push(key);
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(listed, keys);

    // Small pages under a prefix, after a key (the reconciler's walk).
    let mut walked = Vec::new();
    let mut after = "k/00990".to_string();
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("many")
            .prefix("k/")
            .start_after(&after)
            .max_keys(7)
            .send()
            .await?;
        assert!(page.contents().len() <= 7);
        let keys: Vec<String> = page
            .contents()
            .iter()
            .map(|o| o.key().unwrap_or_default().to_string())
            .collect();
        walked.extend(keys.iter().cloned());
        if page.is_truncated() != Some(true) {
            break;
        }
        after = keys
            .last()
            .context("a truncated page with no keys")?
            .clone();
    }
    let expected: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("k/") && k.as_str() > "k/00990")
        .cloned()
        .collect();
    assert_eq!(walked, expected);
    assert_eq!(walked.len(), 110);

    // Delimiters group keys under common prefixes.
    let top = s3
        .list_objects_v2()
        .bucket("many")
        .delimiter("/")
        .send()
        .await?;
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["k/"]);
    let objects: Vec<&str> = top.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(objects, ["Z", "a", "k-", "é"]);
    Ok(())
}

/// Only the server's key, with the right secret and region, gets in; the
/// wrong secret is a 403 whose code FaDO's storage check maps to `secret_key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_the_key_secret_and_region() -> Result<()> {
    let s = start().await;
    s.client().create_bucket().bucket("private").send().await?;

    let wrong_secret = s
        .client_with(&s.key_id, "not-the-secret")
        .list_buckets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&wrong_secret),
        ("SignatureDoesNotMatch".into(), 403)
    );
    let wrong_secret = s
        .client_with(&s.key_id, "not-the-secret")
        .get_object()
        .bucket("private")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&wrong_secret).1, 403);
    let unknown_key = s
        .client_with("SOMEONEELSE", &s.secret)
        .list_buckets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&unknown_key),
        ("InvalidAccessKeyId".into(), 403)
    );
    let wrong_region = s
        .client_for(&s.key_id, &s.secret, "eu-central-1")
        .list_buckets()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&wrong_region),
        ("AuthorizationHeaderMalformed".into(), 400)
    );
    assert!(
        wrong_region
            .as_service_error()
            .and_then(|e| e.message())
            .is_some_and(|m| m.contains("expecting 'us-east-1'")),
        "{wrong_region:?}"
    );
    let anonymous = harness::http()
        .get(format!("{}/private/k", s.endpoint))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 403);
    let listing = harness::http()
        .get(format!("{}/private", s.endpoint))
        .send()
        .await?;
    assert_eq!(listing.status(), 403);
    Ok(())
}

/// Stopped with SIGTERM and started again on the same directory, the
/// server has the same buckets, bytes, ETags and metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() -> Result<()> {
    let mut s = start().await;
    let s3 = s.client();
    s3.create_bucket().bucket("kept").send().await?;
    let small = data(8, 10_000);
    s3.put_object()
        .bucket("kept")
        .key("nested/small ✓")
        .metadata("fado-source-etag", "e1")
        .body(ByteStream::from(small.clone()))
        .send()
        .await?;
    let big = data(9, 11 << 20);
    let upload = s3
        .create_multipart_upload()
        .bucket("kept")
        .key("big")
        .send()
        .await?;
    let id = upload.upload_id().context("no upload id")?;
    let mut parts = Vec::new();
    for (i, chunk) in big.chunks(5 << 20).enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("kept")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await?;
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(out.e_tag().map(str::to_string))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("kept")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await?;
    let before = s.listing("kept").await;

    tokio::task::block_in_place(|| s.stop())?;
    assert!(
        s3.list_buckets().send().await.is_err(),
        "the stopped server answered"
    );
    tokio::task::block_in_place(|| s.resume())?;

    assert_eq!(s.listing("kept").await, before);
    assert_eq!(before.len(), 2);
    assert!(before[0].2.ends_with("-3"), "{before:?}");
    assert!(s.get("kept", "big").await == Some(big));
    assert_eq!(s.get("kept", "nested/small ✓").await, Some(small));
    let head = s
        .client()
        .head_object()
        .bucket("kept")
        .key("nested/small ✓")
        .send()
        .await?;
    assert_eq!(
        head.metadata().and_then(|m| m.get("fado-source-etag")),
        Some(&"e1".to_string())
    );
    assert!(
        s.log().contains("Serving S3 at"),
        "the server did not log its endpoint:\n{}",
        s.log()
    );
    Ok(())
}

/// Every S3 key is an object of its own, whatever a file system would make
/// of it as a path: stored, listed (grouped by delimiters, under prefixes,
/// page by page), read back byte for byte, copied and deleted. Only a key
/// S3 itself refuses (over 1024 bytes) is refused, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_keys_are_stored_listed_read_and_deleted() -> Result<()> {
    let s = start().await;
    let s3 = s.client();
    s3.create_bucket().bucket("keys").send().await?;
    let long_segment = format!("seg/{}/end", "s".repeat(300));
    let longest = format!("k/{}", "x".repeat(1022));
    assert_eq!(longest.len(), 1024);
    let mut keys: Vec<String> = [
        "a/../b",
        "./x",
        "a//b",
        "/lead",
        "trail/",
        ".",
        "..",
        "a",
        "a/b",
        "100% sure",
        "c++/x+y=z",
        "with space/and more ",
        "ünïcödé/✓ 日本語",
        "ctl/\u{1}\u{7f}\t",
        long_segment.as_str(),
        longest.as_str(),
    ]
    .map(String::from)
    .to_vec();
    for (i, key) in keys.iter().enumerate() {
        // Distinct bodies: a mixed-up key would read another's bytes.
        let body = format!("{i}:{key}").into_bytes();
        let put = s3
            .put_object()
            .bucket("keys")
            .key(key)
            .metadata("n", i.to_string())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .with_context(|| format!("PUT {key:?}\n{}", s.log()))?;
        assert_eq!(
            put.e_tag(),
            Some(format!("\"{}\"", md5_hex(&body)).as_str()),
            "{key:?}"
        );
    }
    // A server-side copy to another awkward key.
    s3.copy_object()
        .bucket("keys")
        .key("a/./b")
        .copy_source(format!("keys/{}", urlencode("a/../b")))
        .send()
        .await?;
    keys.push("a/./b".to_string());

    for (i, key) in keys.iter().enumerate() {
        let expected = if key == "a/./b" {
            "0:a/../b".to_string()
        } else {
            format!("{i}:{key}")
        };
        let got = s3.get_object().bucket("keys").key(key).send().await?;
        assert_eq!(
            got.metadata().and_then(|m| m.get("n")).map(String::as_str),
            Some(
                if key == "a/./b" {
                    "0".to_string()
                } else {
                    i.to_string()
                }
                .as_str()
            ),
            "{key:?}"
        );
        let bytes = got.body.collect().await?.into_bytes();
        assert_eq!(bytes.as_ref(), expected.as_bytes(), "{key:?}");
        let head = s3.head_object().bucket("keys").key(key).send().await?;
        assert_eq!(
            head.content_length(),
            Some(expected.len() as i64),
            "{key:?}"
        );
    }

    // The whole bucket, URL-encoded (control characters cannot be XML text),
    // a few keys at a time: every key once, in byte order.
    let mut sorted = keys.clone();
    sorted.sort();
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("keys")
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .max_keys(4)
            .set_continuation_token(token.take())
            .send()
            .await?;
        assert!(page.contents().len() <= 4);
        listed.extend(
            page.contents()
                .iter()
                .map(|o| url_decode(o.key().unwrap_or_default())),
        );
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    assert_eq!(listed, sorted);

    // Delimiters group by the first `/` after the prefix, as S3 does.
    let top = list_grouped(&s3, "", "/").await?;
    assert_eq!(top, model_grouped(&keys, "", "/"));
    assert_eq!(
        top,
        (
            [".", "..", "100% sure", "a"].map(String::from).to_vec(),
            [
                "./",
                "/",
                "a/",
                "c++/",
                "ctl/",
                "k/",
                "seg/",
                "trail/",
                "with space/",
                "ünïcödé/"
            ]
            .map(String::from)
            .to_vec(),
        )
    );
    let under_a = list_grouped(&s3, "a/", "/").await?;
    assert_eq!(
        under_a,
        (
            ["a/b"].map(String::from).to_vec(),
            ["a/../", "a/./", "a//"].map(String::from).to_vec()
        )
    );
    for prefix in ["/", "./", "trail/", "seg/", "a//", "ctl/"] {
        assert_eq!(
            list_grouped(&s3, prefix, "/").await?,
            model_grouped(&keys, prefix, "/"),
            "prefix {prefix:?}"
        );
    }

    // A key S3 refuses: nothing is written.
    let too_long = format!("k/{}", "x".repeat(1023));
    let refused = s3
        .put_object()
        .bucket("keys")
        .key(&too_long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&refused), ("KeyTooLongError".into(), 400));
    assert_eq!(list_grouped(&s3, "", "/").await?, top);
    assert_eq!(list_grouped(&s3, "k/", "").await?.0, [longest]);

    // Deletes: a few one by one (twice: an absent key is fine), the rest
    // at once. A DeleteObjects answer that names its keys is XML, which
    // cannot carry a control character (nor can S3's), so that key goes
    // in a quiet one.
    for key in ["a", "/lead", "."] {
        s3.delete_object().bucket("keys").key(key).send().await?;
        s3.delete_object().bucket("keys").key(key).send().await?;
        assert_eq!(s.get("keys", key).await, None, "{key:?}");
    }
    assert!(s.get("keys", "a/b").await.is_some(), "a/b went with a");
    let (quiet, named): (Vec<&String>, Vec<&String>) = keys
        .iter()
        .filter(|k| !["a", "/lead", "."].contains(&k.as_str()))
        .partition(|k| k.starts_with("ctl/"));
    for (batch, is_quiet) in [(&quiet, true), (&named, false)] {
        let mut delete = Delete::builder().quiet(is_quiet);
        for key in batch.iter() {
            delete = delete.objects(ObjectIdentifier::builder().key(*key).build()?);
        }
        let out = s3
            .delete_objects()
            .bucket("keys")
            .delete(delete.build()?)
            .send()
            .await?;
        assert!(out.errors().is_empty(), "{out:?}");
        let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
        deleted.sort();
        let mut expected: Vec<&str> = if is_quiet {
            Vec::new()
        } else {
            batch.iter().map(|k| k.as_str()).collect()
        };
        expected.sort();
        assert_eq!(deleted, expected);
    }
    let left = s3.list_objects_v2().bucket("keys").send().await?;
    assert_eq!(left.key_count(), Some(0), "{left:?}");
    s3.delete_bucket().bucket("keys").send().await?;
    Ok(())
}

/// A directory written by earlier versions (through s3s-fs: objects as files
/// under bucket directories, attributes in files beside them), as `fado
/// demo` keeps it across upgrades, is served after a restart: same bytes,
/// ETags, content type and metadata, and the old files are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_of_the_old_layout_is_imported_on_start() -> Result<()> {
    let mut s = start().await;
    tokio::task::block_in_place(|| s.stop())?;
    let b64 = |v: &str| {
        base64::engine::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v)
    };
    let photo = data(11, 70_000);
    let old = [
        ("photos", "2026/cat.jpg", photo.clone(), true),
        ("photos", "readme", b"hello".to_vec(), false),
        ("logs", "a/b/c.log", b"line\n".to_vec(), false),
    ];
    for (bucket, key, body, with_attrs) in &old {
        let path = s.data.join(bucket).join(key);
        std::fs::create_dir_all(path.parent().context("a parent")?)?;
        std::fs::write(&path, body)?;
        let sidecar = format!(".bucket-{}.object-{}", b64(bucket), b64(key));
        if *with_attrs {
            std::fs::write(
                s.data.join(format!("{sidecar}.metadata.json")),
                r#"{"user_metadata":{"fado-source-etag":"e1"},"content_type":"image/jpeg"}"#,
            )?;
        }
        std::fs::write(
            s.data.join(format!("{sidecar}.internal.json")),
            format!(r#"{{"e_tag":"{}"}}"#, md5_hex(body)),
        )?;
    }
    tokio::task::block_in_place(|| s.resume())?;

    let s3 = s.client();
    for (bucket, key, body, _) in &old {
        assert_eq!(
            s.get(bucket, key).await.as_ref(),
            Some(body),
            "{bucket}/{key}"
        );
    }
    assert_eq!(
        s.listing("photos").await,
        [
            (
                "2026/cat.jpg".to_string(),
                photo.len() as i64,
                md5_hex(&photo)
            ),
            ("readme".to_string(), 5, md5_hex(b"hello")),
        ]
    );
    let head = s3
        .head_object()
        .bucket("photos")
        .key("2026/cat.jpg")
        .send()
        .await?;
    assert_eq!(head.content_type(), Some("image/jpeg"));
    assert_eq!(
        head.metadata().and_then(|m| m.get("fado-source-etag")),
        Some(&"e1".to_string())
    );
    let buckets = s3.list_buckets().send().await?;
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["logs", "photos"]);
    // Only the new store is left in the directory.
    let left: Vec<String> = std::fs::read_dir(&s.data)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    assert_eq!(left, ["fado_s3"], "{}", s.log());
    Ok(())
}

/// (keys, common prefixes) of a listing of `bucket` "keys" with a delimiter.
async fn list_grouped(
    s3: &aws_sdk_s3::Client,
    prefix: &str,
    delimiter: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("keys")
            .prefix(prefix)
            .delimiter(delimiter)
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .max_keys(3)
            .set_continuation_token(token.take())
            .send()
            .await?;
        keys.extend(
            page.contents()
                .iter()
                .map(|o| url_decode(o.key().unwrap_or_default())),
        );
        prefixes.extend(
            page.common_prefixes()
                .iter()
                .map(|p| url_decode(p.prefix().unwrap_or_default())),
        );
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok((keys, prefixes)),
        }
    }
}

/// What S3 lists for `keys` under `prefix` with `delimiter`.
fn model_grouped(keys: &[String], prefix: &str, delimiter: &str) -> (Vec<String>, Vec<String>) {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        match rest.find(delimiter).filter(|_| !delimiter.is_empty()) {
            Some(at) => prefixes.push(format!("{prefix}{}", &rest[..at + delimiter.len()])),
            None => objects.push(key.clone()),
        }
    }
    objects.sort();
    prefixes.sort();
    prefixes.dedup();
    (objects, prefixes)
}

/// Undoes `encoding-type=url`.
fn url_decode(s: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%'
            && let Some(hex) = tail.get(..2)
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
        {
            bytes.push(v);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).expect("a URL-encoded key is UTF-8")
}

fn base64_md5(data: &[u8]) -> String {
    base64::engine::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        Md5::digest(data),
    )
}

/// Percent-encodes a key for `x-amz-copy-source` (slashes stay).
fn urlencode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
