//! The example functions (`examples/functions/spin.toml`) as the demo runs
//! them: two simulated clusters, each a `fado serve` of the same manifest
//! with its own variables and its own Garage as storage. Cluster A reads its
//! own storage and falls back to B's; B reads only its own. Both storages
//! know the same access key, as the fallback requires.

use std::io::Cursor;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::primitives::ByteStream;
use harness::garage::{Garage, garage_bin};
use harness::orchestrator::{ADMIN_TOKEN, Options, Orchestrator};
use harness::{AppDir, Fado, FadoOptions, eventually, target_dir, workspace};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Two clusters: storage 1 with fado A, storage 2 with fado B.
struct Clusters {
    storage: Vec<Garage>,
    /// The key both storages accept.
    s3: [aws_sdk_s3::Client; 2],
    a: Fado,
    b: Fado,
    _app: AppDir,
}

/// Lets `to` accept `from`'s access key (Garage's `key import`), with the
/// right to create buckets.
fn share_key(from: &Garage, to: &Garage) -> Result<()> {
    let config = to.dir.join("garage.toml");
    for args in [
        vec![
            "key",
            "import",
            "--yes",
            "-n",
            "shared",
            &from.key_id,
            &from.secret,
        ],
        vec!["key", "allow", "--create-bucket", "shared"],
    ] {
        let out = Command::new(garage_bin())
            .arg("-c")
            .arg(&config)
            .args(&args)
            .output()
            .context("running garage")?;
        ensure!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The example manifest with its component paths made absolute.
fn app() -> Result<AppDir> {
    let path = workspace().join("examples/functions/spin.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    ensure!(text.contains("source = \"../../target/"));
    AppDir::new(&text.replace(
        "source = \"../../target/",
        &format!("source = \"{}/", target_dir().display()),
    ))
}

fn serve(app: &AppDir, vars: &[(&str, String)]) -> Result<Fado> {
    let mut args = Vec::new();
    for (k, v) in vars {
        args.push("--variable".to_string());
        args.push(format!("{k}={v}"));
    }
    Fado::start_with(
        app,
        FadoOptions {
            args,
            ..Default::default()
        },
    )
}

impl Clusters {
    async fn start() -> Result<Self> {
        let storage = Garage::launch(2).await;
        let (s1, s2) = (&storage[0], &storage[1]);
        share_key(s1, s2)?;
        let app = app()?;
        let common = |g: &Garage| {
            vec![
                ("s3_endpoint", g.endpoint.clone()),
                ("s3_region", g.region.clone()),
                ("s3_access_key", s1.key_id.clone()),
                ("s3_secret_key", s1.secret.clone()),
            ]
        };
        let mut a_vars = common(s1);
        a_vars.extend([
            ("cluster", "a".to_string()),
            ("deployment", "a-spin".to_string()),
            ("s3_fallback_endpoints", s2.endpoint.clone()),
            ("s3_fallback_hosts", s2.endpoint.clone()),
            ("max_input_mib", "1".to_string()),
        ]);
        let mut b_vars = common(s2);
        b_vars.extend([
            ("cluster", "b".to_string()),
            ("deployment", "b-spin".to_string()),
        ]);
        let a = serve(&app, &a_vars)?;
        let b = serve(&app, &b_vars)?;
        let s3 = [s1.client(), s2.client_with(&s1.key_id, &s1.secret)];
        Ok(Self {
            storage,
            s3,
            a,
            b,
            _app: app,
        })
    }

    async fn put(&self, storage: usize, bucket: &str, key: &str, data: Vec<u8>) {
        let s3 = &self.s3[storage];
        // Already there from an earlier put is fine.
        let _ = s3.create_bucket().bucket(bucket).send().await;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {bucket}/{key} on storage {}: {e:?}", storage + 1));
    }

    async fn get(&self, storage: usize, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self.s3[storage]
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.ok()?.into_bytes().to_vec())
    }

    fn logs(&self) -> String {
        format!(
            "--- fado A:\n{}\n--- fado B:\n{}",
            self.a.log(),
            self.b.log()
        )
    }
}

/// A picture of `w`×`h` in `format`.
fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 99])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), format)
        .expect("encoding a test picture");
    out
}

/// The size of a PNG, failing if it is not one.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory_with_format(bytes, ImageFormat::Png)
        .expect("the thumbnail is a PNG");
    (img.width(), img.height())
}

async fn call(
    fado: &Fado,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, HeaderMap, Vec<u8>) {
    let mut req = harness::http()
        .request(method.parse().unwrap(), fado.url(path))
        .header("x-fado-bucket", "photos");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    (status, headers, bytes)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(bytes)))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Each copy of the application says which cluster and deployment it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodeinfo_names_the_cluster_that_served() -> Result<()> {
    let c = Clusters::start().await?;
    let (status, headers, body) = call(&c.a, "GET", "/nodeinfo/where?x=1", None).await;
    assert_eq!(status, 200, "{}", c.logs());
    assert_eq!(header(&headers, "x-fado-cluster"), "a");
    assert_eq!(
        json_of(&body),
        json!({"function": "nodeinfo", "cluster": "a", "deployment": "a-spin",
               "method": "GET", "path": "/nodeinfo/where", "bucket": "photos"})
    );
    let (status, headers, body) = call(&c.b, "POST", "/nodeinfo", Some(json!({}))).await;
    assert_eq!(status, 200, "{}", c.logs());
    assert_eq!(header(&headers, "x-fado-cluster"), "b");
    let body = json_of(&body);
    assert_eq!(
        (&body["cluster"], &body["deployment"], &body["method"]),
        (&json!("b"), &json!("b-spin"), &json!("POST"))
    );
    Ok(())
}

/// Thumbnails of a PNG and a JPEG from the own storage, written back or
/// returned; a bucket only on the other cluster's storage is read there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_makes_thumbnails_from_local_and_fallback_storage() -> Result<()> {
    let c = Clusters::start().await?;
    let (s1, s2) = (&c.storage[0], &c.storage[1]);
    c.put(0, "photos", "cat.png", picture(300, 200, ImageFormat::Png))
        .await;
    c.put(
        0,
        "photos",
        "dir/dog.jpg",
        picture(400, 100, ImageFormat::Jpeg),
    )
    .await;
    c.put(
        1,
        "remote",
        "wide.png",
        picture(1000, 500, ImageFormat::Png),
    )
    .await;

    // PNG, stored next to the original on the storage it came from.
    let (status, _, body) = call(
        &c.a,
        "GET",
        "/image?bucket=photos&key=cat.png&width=64",
        None,
    )
    .await;
    let facts = json_of(&body);
    assert_eq!(status, 200, "{facts}\n{}", c.logs());
    assert_eq!(facts["thumbnail_key"], "thumbnails/cat.png.png");
    assert_eq!(facts["local"], true);
    assert_eq!(facts["source"], s1.endpoint.as_str());
    assert_eq!(facts["written_to"], s1.endpoint.as_str());
    assert_eq!(
        (facts["width"].clone(), facts["height"].clone()),
        (json!(64), json!(43))
    );
    assert_eq!(facts["source_format"], "png");
    let stored = c
        .get(0, "photos", "thumbnails/cat.png.png")
        .await
        .expect("the thumbnail was written to storage 1");
    assert_eq!(png_size(&stored), (64, 43));
    assert_eq!(facts["bytes"], stored.len());
    for timing in ["read_ms", "resize_ms", "write_ms"] {
        assert!(facts[timing].is_number(), "{timing} in {facts}");
    }

    // JPEG through a JSON body, returned rather than stored (default box 128).
    let (status, headers, body) = call(
        &c.a,
        "POST",
        "/image",
        Some(json!({"bucket": "photos", "key": "dir/dog.jpg", "store": false})),
    )
    .await;
    assert_eq!(
        status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&body),
        c.logs()
    );
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert_eq!(png_size(&body), (128, 32));
    assert_eq!(header(&headers, "x-image-width"), "128");
    assert_eq!(header(&headers, "x-image-height"), "32");
    assert_eq!(header(&headers, "x-image-source-format"), "jpeg");
    assert_eq!(header(&headers, "x-image-local"), "true");
    assert_eq!(header(&headers, "x-image-source"), s1.endpoint);
    assert!(!header(&headers, "x-image-read-ms").is_empty());
    assert_eq!(c.get(0, "photos", "thumbnails/dir/dog.jpg.png").await, None);

    // Not on A's storage: read from the fallback, and written there.
    let (status, _, body) = call(
        &c.a,
        "GET",
        "/image?bucket=remote&key=wide.png&height=50",
        None,
    )
    .await;
    let facts = json_of(&body);
    assert_eq!(status, 200, "{facts}\n{}", c.logs());
    assert_eq!(facts["local"], false);
    assert_eq!(facts["source"], s2.endpoint.as_str());
    assert_eq!(facts["cluster"], "a");
    assert_eq!(
        (facts["width"].clone(), facts["height"].clone()),
        (json!(100), json!(50))
    );
    let stored = c
        .get(1, "remote", "thumbnails/wide.png.png")
        .await
        .expect("the thumbnail was written to storage 2");
    assert_eq!(png_size(&stored), (100, 50));

    // The same bucket is local to B.
    let (status, headers, body) = call(
        &c.b,
        "GET",
        "/image?bucket=remote&key=wide.png&store=false",
        None,
    )
    .await;
    assert_eq!(
        status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&body),
        c.logs()
    );
    assert_eq!(header(&headers, "x-image-local"), "true");
    assert_eq!(header(&headers, "x-image-cluster"), "b");
    assert_eq!(png_size(&body), (128, 64));
    Ok(())
}

/// A bad call and its error: fado, method, path, status, code, field, and
/// a word the message must contain.
type Case<'a> = (
    &'a Fado,
    &'a str,
    &'a str,
    u16,
    &'a str,
    Option<&'a str>,
    &'a str,
);

/// Bad calls get the status that fits and a JSON error naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_errors_name_the_problem() -> Result<()> {
    let c = Clusters::start().await?;
    c.put(0, "photos", "cat.png", picture(30, 20, ImageFormat::Png))
        .await;
    c.put(0, "photos", "notes.txt", b"not a picture at all".to_vec())
        .await;
    let mut broken = picture(300, 200, ImageFormat::Png);
    broken.truncate(100);
    c.put(0, "photos", "broken.png", broken).await;
    // Over A's 1 MiB limit (max_input_mib=1).
    c.put(0, "photos", "big.png", vec![7; (1 << 20) + 1]).await;

    let cases: [Case; 11] = [
        (
            &c.a,
            "GET",
            "/image?key=cat.png",
            400,
            "invalid",
            Some("bucket"),
            "required",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=Not_A_Bucket&key=cat.png",
            400,
            "invalid",
            Some("bucket"),
            "Not_A_Bucket",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=photos",
            400,
            "invalid",
            Some("key"),
            "required",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=photos&key=cat.png&width=0",
            400,
            "invalid",
            Some("width"),
            "pixels",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=nowhere&key=cat.png",
            404,
            "not_found",
            Some("bucket"),
            "nowhere",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=photos&key=absent.png",
            404,
            "not_found",
            Some("key"),
            "absent.png",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=photos&key=notes.txt",
            415,
            "unsupported_media_type",
            Some("key"),
            "notes.txt",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=photos&key=broken.png",
            422,
            "undecodable_image",
            Some("key"),
            "broken.png",
        ),
        (
            &c.a,
            "GET",
            "/image?bucket=photos&key=big.png",
            413,
            "too_large",
            Some("key"),
            "max_input_mib",
        ),
        (
            &c.a,
            "DELETE",
            "/image?bucket=photos&key=cat.png",
            405,
            "method_not_allowed",
            None,
            "GET",
        ),
        // B has no fallback: A's bucket does not exist for it.
        (
            &c.b,
            "GET",
            "/image?bucket=photos&key=cat.png",
            404,
            "not_found",
            Some("bucket"),
            "photos",
        ),
    ];
    for (fado, method, path, status, code, field, says) in cases {
        let (got, headers, body) = call(fado, method, path, None).await;
        let body = json_of(&body);
        assert_eq!(got, status, "{method} {path}: {body}\n{}", c.logs());
        assert_eq!(
            header(&headers, "content-type"),
            "application/json",
            "{path}"
        );
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert_eq!(
            body["error"]["field"].as_str(),
            field,
            "{method} {path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{method} {path}: {message:?} does not mention {says:?}"
        );
    }
    // Nothing was written for the failed calls.
    let thumbs: Vec<String> = c.storage[0]
        .keys("photos")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("thumbnails/"))
        .collect();
    assert!(thumbs.is_empty(), "{thumbs:?}");
    Ok(())
}

/// FaDO itself with two clusters (`c1`, `c2`), each with a Garage
/// registered as its storage (`s1`, `s2`, each with its own key), and
/// bucket `photos` mastered on `s1`, replicated to `s2`, holding `cat.png`.
struct Federation {
    o: Orchestrator,
    storage: Vec<Garage>,
}

impl Federation {
    async fn start() -> Result<Self> {
        let database = harness::shared_postgres().create_database().await?;
        let o = Orchestrator::start_with(
            database,
            Options {
                replicator: true,
                ..Options::default()
            },
        )
        .await?;
        let storage = Garage::launch(2).await;
        for (i, g) in storage.iter().enumerate() {
            let n = i + 1;
            o.create(
                "/api/clusters",
                json!({"name": format!("c{n}"), "zones": ["germany"]}),
            )
            .await;
            o.create(
                "/api/storage-deployments",
                g.storage_body(&format!("s{n}"), &format!("c{n}")),
            )
            .await;
        }
        let f = Self { o, storage };
        f.bucket("photos", 2).await;
        f.upload("photos", "cat.png", picture(300, 200, ImageFormat::Png))
            .await;
        let copied = eventually(Duration::from_secs(60), || {
            f.storage[1].get("photos", "cat.png")
        })
        .await;
        assert!(
            copied.is_some(),
            "cat.png did not reach storage 2: {:?}\n{}",
            f.o.replica_states("photos").await,
            f.o.fado.log()
        );
        Ok(f)
    }

    async fn bucket(&self, name: &str, target_replicas: u32) {
        self.o
            .create(
                "/api/buckets",
                json!({"name": name, "master_storage": "s1", "allowed_zones": ["germany"],
                       "target_replicas": target_replicas}),
            )
            .await;
    }

    /// Through the object API, to the master.
    async fn upload(&self, bucket: &str, key: &str, data: Vec<u8>) {
        let upload = harness::http()
            .put(
                self.o
                    .fado
                    .url(&format!("/api/buckets/{bucket}/objects/{key}")),
            )
            .bearer_auth(ADMIN_TOKEN)
            .body(data)
            .send()
            .await
            .expect("the object API answers");
        assert_eq!(upload.status().as_u16(), 200, "{}", self.o.fado.log());
    }

    /// The example functions as cluster `name` of storage `index`, with its
    /// own key; thumbnails go through FaDO's API with `token`.
    fn cluster(&self, app: &AppDir, name: &str, index: usize, token: &str) -> Result<Fado> {
        let g = &self.storage[index];
        serve(
            app,
            &[
                ("cluster", name.to_string()),
                ("deployment", format!("{name}-spin")),
                ("s3_endpoint", g.endpoint.clone()),
                ("s3_region", g.region.clone()),
                ("s3_access_key", g.key_id.clone()),
                ("s3_secret_key", g.secret.clone()),
                ("fado_api", format!("http://{}", self.o.fado.addr)),
                ("fado_token", token.to_string()),
            ],
        )
    }
}

/// With `fado_api` set, the thumbnail goes through FaDO's object API: it
/// lands on the bucket's master (storage 1) though the function ran in
/// cluster B and read B's replica, and the replicator copies it back to B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_writes_through_fado_to_the_master() -> Result<()> {
    let f = Federation::start().await?;
    let (o, storage) = (&f.o, &f.storage);
    let thumb = "thumbnails/cat.png.png";
    let replicated = |key: &'static str| {
        let g = &storage[1];
        async move { g.get("photos", key).await }
    };

    // Cluster B: its own storage holds a replica of `photos`.
    let app = app()?;
    let s2 = &storage[1];
    let b = f.cluster(&app, "b", 1, ADMIN_TOKEN)?;
    let (status, _, body) = call(&b, "GET", "/image?bucket=photos&key=cat.png", None).await;
    let facts = json_of(&body);
    assert_eq!(status, 200, "{facts}\n{}\n{}", b.log(), o.fado.log());
    assert_eq!(facts["local"], true);
    assert_eq!(facts["source"], s2.endpoint.as_str());
    assert_eq!(facts["written_to"], "fado_api");
    let on_master = storage[0]
        .get("photos", thumb)
        .await
        .expect("the thumbnail is on the master");
    assert_eq!(png_size(&on_master), (128, 85));
    let copy = eventually(Duration::from_secs(60), || replicated(thumb)).await;
    assert_eq!(
        copy.as_deref(),
        Some(on_master.as_slice()),
        "the thumbnail was not replicated to storage 2\n{}",
        o.fado.log()
    );

    // A wrong token is FaDO's answer, passed on as a storage failure.
    let bad = f.cluster(&app, "b", 1, "not-the-admin-token")?;
    let (status, _, body) = call(&bad, "GET", "/image?bucket=photos&key=cat.png", None).await;
    let body = json_of(&body);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "storage_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{body}"
    );
    Ok(())
}

/// Storage that cannot be reached or is not allowed, and a wrong variable,
/// are answered as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_storage_and_configuration_failures() -> Result<()> {
    let c = Clusters::start().await?;
    let (s1, s2) = (&c.storage[0], &c.storage[1]);
    c.put(1, "remote", "wide.png", picture(100, 50, ImageFormat::Png))
        .await;
    let app = app()?;
    let cluster = |endpoint: &str| {
        vec![
            ("cluster", "d".to_string()),
            ("s3_endpoint", endpoint.to_string()),
            ("s3_region", s1.region.clone()),
            ("s3_access_key", s1.key_id.clone()),
            ("s3_secret_key", s1.secret.clone()),
        ]
    };

    // The fallback is listed but no allowed_outbound_hosts rule covers it.
    let mut vars = cluster(&s1.endpoint);
    vars.push(("s3_fallback_endpoints", s2.endpoint.clone()));
    let not_allowed = serve(&app, &vars)?;
    // Nothing listens on the own storage's port.
    let dead = format!("http://127.0.0.1:{}", harness::free_port());
    let unreachable = serve(&app, &cluster(&dead))?;
    let mut vars = cluster(&s1.endpoint);
    vars.push(("max_input_mib", "lots".to_string()));
    let misconfigured = serve(&app, &vars)?;

    let cases: [(&Fado, u16, &str, Option<&str>, &str); 3] = [
        (&not_allowed, 502, "storage_error", None, "denied"),
        (&unreachable, 502, "storage_error", None, &dead),
        (
            &misconfigured,
            500,
            "misconfigured",
            Some("max_input_mib"),
            "max_input_mib",
        ),
    ];
    for (fado, status, code, field, says) in cases {
        let (got, _, body) = call(fado, "GET", "/image?bucket=remote&key=wide.png", None).await;
        let body = json_of(&body);
        assert_eq!(got, status, "{body}\n{}", fado.log());
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message
                .to_ascii_lowercase()
                .contains(&says.to_ascii_lowercase()),
            "{message:?} does not mention {says:?}"
        );
    }
    Ok(())
}

/// The demo's path: calls go to FaDO's ingress with the bucket header, the
/// router sends each to a cluster holding the bucket, and the function
/// there reads it from its own storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_fados_router_every_read_is_local() -> Result<()> {
    let f = Federation::start().await?;
    let o = &f.o;
    // `solo` stays on storage 1 only.
    f.bucket("solo", 0).await;
    f.upload("solo", "dog.jpg", picture(400, 100, ImageFormat::Jpeg))
        .await;
    let app = app()?;
    let clusters = [
        f.cluster(&app, "a", 0, ADMIN_TOKEN)?,
        f.cluster(&app, "b", 1, ADMIN_TOKEN)?,
    ];
    for (i, fado) in clusters.iter().enumerate() {
        let n = i + 1;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("f{n}"), "cluster": format!("c{n}"), "platform": "spin",
                   "base_url": format!("http://{}", fado.addr)}),
        )
        .await;
    }
    for (bucket, want) in [("photos", vec!["f1", "f2"]), ("solo", vec!["f1"])] {
        let routed = eventually(Duration::from_secs(60), || async {
            (o.route_targets(bucket).await == want).then_some(())
        })
        .await;
        assert!(
            routed.is_some(),
            "{bucket} is not routed to {want:?}: {:?}",
            o.route_targets(bucket).await
        );
    }

    let invoke = |path: &'static str, bucket: &'static str| async move {
        let resp = harness::http()
            .get(o.fado.url(path))
            .header("x-fado-bucket", bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        (status, headers, body)
    };
    let (status, headers, body) = invoke("/nodeinfo/here", "solo").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "x-fado-upstream"), "f1");
    let info = json_of(&body);
    assert_eq!(
        (&info["cluster"], &info["bucket"], &info["path"]),
        (&json!("a"), &json!("solo"), &json!("/nodeinfo/here"))
    );

    let (status, headers, body) =
        invoke("/image?bucket=solo&key=dog.jpg&store=false", "solo").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(png_size(&body), (128, 32));
    assert_eq!(header(&headers, "x-image-cluster"), "a");
    assert_eq!(header(&headers, "x-image-local"), "true");

    // Replicated: the route's policy spreads the calls, every one local.
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (status, headers, body) =
            invoke("/image?bucket=photos&key=cat.png&store=false", "photos").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(png_size(&body), (128, 85));
        assert_eq!(header(&headers, "x-image-local"), "true");
        served.insert(header(&headers, "x-image-cluster").to_string());
    }
    assert_eq!(served, ["a".to_string(), "b".to_string()].into());
    Ok(())
}
