//! `fado object ls|put|get|rm|stat`: objects through FaDO's object API.
//! Files and directories stream in and out with a progress bar (on a
//! terminal); downloads land in a temporary file first, so a failure never
//! leaves half a file behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use fado_client::paths::{self, ObjectPath};
use fado_client::{ObjectUpload, Progress};
use serde::Serialize;

use super::output::{self, Bar, bytes, short, time};
use super::{Ctx, about};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List objects: BUCKET or BUCKET/PREFIX.
    #[command(visible_alias = "list")]
    Ls {
        #[arg(value_name = "BUCKET[/PREFIX]")]
        path: String,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Upload a file (to BUCKET/KEY, or BUCKET/DIR/ keeping its name) or a
    /// directory, recursively (to BUCKET[/PREFIX]).
    Put {
        #[arg(value_name = "LOCAL")]
        source: PathBuf,
        #[arg(value_name = "BUCKET[/KEY]")]
        target: String,
        /// Content type stored with each object.
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Download BUCKET/KEY to a file (or `-` for stdout), or with
    /// --recursive every object under BUCKET[/PREFIX] into a directory.
    Get {
        #[arg(value_name = "BUCKET/KEY")]
        source: String,
        #[arg(value_name = "LOCAL")]
        target: PathBuf,
        /// Download everything under the prefix, keeping its layout.
        #[arg(long, short)]
        recursive: bool,
    },
    /// Remove objects (BUCKET/KEY ...), or with --recursive everything under BUCKET/PREFIX.
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        #[arg(value_name = "BUCKET/KEY", required = true)]
        paths: Vec<String>,
        #[arg(long, short)]
        recursive: bool,
    },
    /// Show an object's size, ETag, type and the copy that serves it.
    #[command(visible_alias = "head")]
    Stat {
        #[arg(value_name = "BUCKET/KEY")]
        path: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Ls { path, limit } => ls(ctx, &path, limit).await,
        Cmd::Put {
            source,
            target,
            content_type,
        } => put(ctx, &source, &target, content_type.as_deref()).await,
        Cmd::Get {
            source,
            target,
            recursive,
        } => {
            if recursive {
                get_tree(ctx, &source, &target).await
            } else {
                get(ctx, &source, &target).await
            }
        }
        Cmd::Rm { paths, recursive } => rm(ctx, &paths, recursive).await,
        Cmd::Stat { path } => {
            let p = object(&path)?;
            let head = about(
                ctx.client.head_object(&p.bucket, &p.key).await,
                format!("object {p}"),
            )?;
            if ctx.json {
                return output::json(&head);
            }
            output::print(&output::fields(vec![
                ("object", p.to_string()),
                (
                    "size",
                    format!("{} ({} bytes)", bytes(head.size as i64), head.size),
                ),
                ("etag", output::opt(&head.etag)),
                ("content type", output::opt(&head.content_type)),
                ("last modified", output::opt(&head.last_modified)),
                ("served by", output::opt(&head.storage)),
            ]));
            Ok(())
        }
    }
}

/// `BUCKET/KEY` with a non-empty key.
fn object(s: &str) -> Result<ObjectPath> {
    let p = ObjectPath::parse(s)?;
    if p.key.is_empty() {
        bail!("{s:?} names no object: write BUCKET/KEY");
    }
    Ok(p)
}

async fn ls(ctx: &Ctx, path: &str, limit: Option<usize>) -> Result<()> {
    let p = ObjectPath::parse(path)?;
    let items = about(
        ctx.client.list_objects(&p.bucket, &p.key, limit).await,
        format!("listing {p}"),
    )?;
    if ctx.json {
        return output::json(&items);
    }
    let mut t = output::table(&["KEY", "SIZE", "ETAG", "UPDATED", "TYPE"]);
    for o in &items {
        t.add_row(vec![
            o.key.clone(),
            bytes(o.size),
            short(&o.etag),
            time(&o.updated_at),
            output::opt(&o.content_type),
        ]);
    }
    output::print(&t);
    Ok(())
}

/// One file to upload, with its key.
struct Upload {
    file: PathBuf,
    key: String,
    size: u64,
}

async fn put(ctx: &Ctx, source: &Path, target: &str, content_type: Option<&str>) -> Result<()> {
    let t = ObjectPath::parse(target)?;
    let meta = std::fs::metadata(source).with_context(|| format!("{}", source.display()))?;
    let uploads = if meta.is_dir() {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(source).sort_by_file_name() {
            let entry = entry.with_context(|| format!("walking {}", source.display()))?;
            if !entry.file_type().is_file() {
                continue;
            }
            let relative = entry
                .path()
                .strip_prefix(source)
                .expect("walkdir yields paths below its root");
            let key = paths::key_for_relative(&t.key, relative)?;
            let size = entry
                .metadata()
                .with_context(|| format!("{}", entry.path().display()))?
                .len();
            out.push(Upload {
                file: entry.path().to_path_buf(),
                key,
                size,
            });
        }
        out
    } else {
        vec![Upload {
            file: source.to_path_buf(),
            key: paths::key_for_file(&t.key, source)?,
            size: meta.len(),
        }]
    };

    let total: u64 = uploads.iter().map(|u| u.size).sum();
    let bar = output::bar(total, "uploading");
    let progress: Arc<dyn Progress> = Arc::new(Bar {
        bar: bar.clone(),
        sized: false,
    });
    let mut done: Vec<ObjectUpload> = Vec::new();
    for u in &uploads {
        bar.set_message(u.key.clone());
        let r = ctx
            .client
            .put_file(&t.bucket, &u.key, &u.file, content_type, progress.clone())
            .await;
        let up = about(
            r,
            format!("uploading {} to {}/{}", u.file.display(), t.bucket, u.key),
        );
        match up {
            Ok(up) => done.push(up),
            Err(e) => {
                bar.abandon();
                if !done.is_empty() {
                    eprintln!(
                        "{} of {} files were uploaded before this error",
                        done.len(),
                        uploads.len()
                    );
                }
                return Err(e);
            }
        }
    }
    bar.finish_and_clear();
    if ctx.json {
        return output::json(&done);
    }
    if let [one] = done.as_slice() {
        println!(
            "uploaded {} to {}/{} ({}, etag {}, master {}, {} replica jobs)",
            uploads[0].file.display(),
            one.bucket,
            one.key,
            bytes(one.size),
            one.etag,
            one.storage,
            one.replica_jobs
        );
    } else {
        println!(
            "uploaded {} files ({}) to {}",
            done.len(),
            bytes(total as i64),
            ObjectPath {
                bucket: t.bucket.clone(),
                key: paths::dir_prefix(&t.key)
            }
        );
    }
    Ok(())
}

async fn get(ctx: &Ctx, source: &str, target: &Path) -> Result<()> {
    let p = object(source)?;
    let subject = format!("object {p}");
    if target == Path::new("-") {
        let mut out = tokio::io::stdout();
        about(
            ctx.client
                .get_to_writer(&p.bucket, &p.key, &mut out, &())
                .await,
            subject,
        )?;
        return Ok(());
    }
    // Into an existing directory: under the key's last segment.
    let file = if target.is_dir() {
        let name = p.key.rsplit('/').next().unwrap_or(&p.key);
        paths::local_path_for(target, "", name)?
    } else {
        target.to_path_buf()
    };
    let bar = output::bar(0, &p.key);
    let head = about(
        ctx.client
            .get_to_file(
                &p.bucket,
                &p.key,
                &file,
                &Bar {
                    bar: bar.clone(),
                    sized: true,
                },
            )
            .await,
        subject,
    );
    let head = match head {
        Ok(h) => h,
        Err(e) => {
            bar.abandon();
            return Err(e);
        }
    };
    bar.finish_and_clear();
    if ctx.json {
        return output::json(&Downloaded {
            key: &p.key,
            file: &file,
            size: head.size,
            storage: head.storage.as_deref(),
        });
    }
    println!(
        "downloaded {p} to {} ({}{})",
        file.display(),
        bytes(head.size as i64),
        head.storage
            .as_deref()
            .map(|s| format!(", from {s}"))
            .unwrap_or_default()
    );
    Ok(())
}

#[derive(Serialize)]
struct Downloaded<'a> {
    key: &'a str,
    file: &'a Path,
    size: u64,
    storage: Option<&'a str>,
}

async fn get_tree(ctx: &Ctx, source: &str, target: &Path) -> Result<()> {
    let p = ObjectPath::parse(source)?;
    let prefix = p.dir_prefix();
    let objects = about(
        ctx.client.list_objects(&p.bucket, &prefix, None).await,
        format!("listing {p}"),
    )?;
    // Every key must have a safe place before anything is written.
    let mut plan = Vec::new();
    for o in &objects {
        plan.push((o, paths::local_path_for(target, &prefix, &o.key)?));
    }
    std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    let total: u64 = objects.iter().map(|o| o.size.max(0) as u64).sum();
    let bar = output::bar(total, "downloading");
    let progress = Bar {
        bar: bar.clone(),
        sized: false,
    };
    let mut done = Vec::new();
    for (o, file) in plan {
        if o.key.ends_with('/') {
            std::fs::create_dir_all(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            continue;
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        bar.set_message(o.key.clone());
        let head = about(
            ctx.client
                .get_to_file(&p.bucket, &o.key, &file, &progress)
                .await,
            format!("object {}/{}", p.bucket, o.key),
        );
        match head {
            Ok(h) => done.push((o.key.clone(), file, h)),
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        }
    }
    bar.finish_and_clear();
    if ctx.json {
        let out: Vec<Downloaded> = done
            .iter()
            .map(|(k, f, h)| Downloaded {
                key: k,
                file: f,
                size: h.size,
                storage: h.storage.as_deref(),
            })
            .collect();
        return output::json(&out);
    }
    println!(
        "downloaded {} objects ({}) from {} to {}",
        done.len(),
        bytes(total as i64),
        ObjectPath {
            bucket: p.bucket.clone(),
            key: prefix
        },
        target.display()
    );
    Ok(())
}

async fn rm(ctx: &Ctx, list: &[String], recursive: bool) -> Result<()> {
    let mut targets: Vec<(String, String)> = Vec::new();
    for s in list {
        let p = ObjectPath::parse(s)?;
        if recursive {
            let objects = about(
                ctx.client
                    .list_objects(&p.bucket, &p.dir_prefix(), None)
                    .await,
                format!("listing {p}"),
            )?;
            targets.extend(objects.into_iter().map(|o| (p.bucket.clone(), o.key)));
        } else {
            let p = object(s)?;
            targets.push((p.bucket, p.key));
        }
    }
    for (bucket, key) in &targets {
        about(
            ctx.client.delete_object(bucket, key).await,
            format!("object {bucket}/{key}"),
        )?;
    }
    if ctx.json {
        let keys: Vec<String> = targets.iter().map(|(b, k)| format!("{b}/{k}")).collect();
        return output::json(&keys);
    }
    println!("removed {} objects", targets.len());
    Ok(())
}
