//! What the tests do with any S3 service they start (Garage, `fado s3
//! serve`): a client configured explicitly, and direct listings, reads and
//! writes that fail the test loudly, naming the service.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// A path-style client for `endpoint` signing with this key and region.
///
/// Everything is set explicitly, nothing comes from the environment, so
/// `AWS_*` variables of the machine (AWS_CA_BUNDLE, AWS_PROFILE,
/// AWS_ENDPOINT_URL, …) cannot redirect or break it.
pub fn client(endpoint: &str, region: &str, key_id: &str, secret: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(key_id, secret, None, None, "fado-tests"))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// (key, size, unquoted ETag) of the objects of `bucket`, in S3 listing
/// order (first 1000).
pub async fn listing(client: &Client, service: &str, bucket: &str) -> Vec<(String, i64, String)> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("listing {bucket} on {service}: {e:?}"));
    out.contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap_or_default().to_string(),
                o.size().unwrap_or(0),
                o.e_tag().unwrap_or("").trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// The bytes of `bucket/key`, or `None` when it does not exist.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(out.body.collect().await.ok()?.into_bytes().to_vec())
}

/// Writes `bucket/key` directly, as a user of the storage would; returns
/// the unquoted ETag.
pub async fn put(client: &Client, service: &str, bucket: &str, key: &str, data: Vec<u8>) -> String {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key} on {service}: {e:?}"));
    out.e_tag().unwrap_or("").trim_matches('"').to_string()
}
