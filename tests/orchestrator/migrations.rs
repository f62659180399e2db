//! Schema migrations: applied by `fado db migrate` and by the components
//! themselves, under an advisory lock, safely at the same time, and refused
//! when the database does not match this build.

use std::process::{Command, Output};

use harness::orchestrator::Orchestrator;
use harness::{fado_bin, shared_postgres};

fn db_command(database: &str, args: &[&str]) -> Output {
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname={database}",
        shared_postgres().port
    );
    Command::new(fado_bin())
        .arg("db")
        .args(args)
        .env("FADO_DATABASE_URL", url)
        .output()
        .expect("running fado db")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// This build's migrations, `(version, name)` in order, read from the file
/// names of `components/fado-migrations/sql` (`0002_data_plane.sql`).
fn migrations() -> Vec<(i32, String)> {
    let dir = harness::workspace().join("components/fado-migrations/sql");
    let mut out: Vec<(i32, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let (version, name) = file
                .strip_suffix(".sql")
                .and_then(|f| f.split_once('_'))
                .unwrap_or_else(|| panic!("{file}: not NNNN_name.sql"));
            (version.parse().unwrap(), name.to_string())
        })
        .collect();
    out.sort();
    assert_eq!(out.first().map(|m| m.0), Some(1), "{out:?}");
    out
}

fn listed(migrations: &[(i32, String)]) -> String {
    migrations
        .iter()
        .map(|(v, n)| format!("{v} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn applied(database: &str) -> Vec<(i32, String)> {
    let db = shared_postgres().client_for(database).await.unwrap();
    db.query(
        "SELECT version, name FROM fado_schema_migrations ORDER BY version",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fado_db_migrate_applies_once_and_reports_status() {
    let all = migrations();
    let database = shared_postgres().create_database().await.unwrap();
    let status = db_command(&database, &["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains(&format!("pending: {}\n", listed(&all))),
        "{}",
        text(&status)
    );

    let first = db_command(&database, &["migrate"]);
    assert!(first.status.success(), "{}", text(&first));
    for (version, name) in &all {
        assert!(
            text(&first).contains(&format!("applied migration {version} ({name})\n")),
            "{}",
            text(&first)
        );
    }
    let again = db_command(&database, &["migrate"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("up to date"), "{}", text(&again));
    assert_eq!(applied(&database).await, all);
    let status = db_command(&database, &["status"]);
    assert!(text(&status).contains("up to date"), "{}", text(&status));

    // The components find the schema in place and serve.
    let o = Orchestrator::start_on(database).await.unwrap();
    let (s, b) = o.api("GET", "/api/clusters", None).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrators_apply_each_migration_once() {
    let database = shared_postgres().create_database().await.unwrap();
    // Operators' commands and the catalog's own migration, all at once.
    let o = Orchestrator::start_on(database.clone()).await.unwrap();
    let clis: Vec<_> = (0..4)
        .map(|_| {
            let database = database.clone();
            std::thread::spawn(move || db_command(&database, &["migrate"]))
        })
        .collect();
    let api = futures::future::join_all((0..4).map(|_| o.api("GET", "/api/clusters", None))).await;
    for out in clis {
        let out = out.join().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    for (s, b) in api {
        assert_eq!(s, 200, "{b}");
    }
    assert_eq!(applied(&database).await, migrations());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_does_not_match_this_build_is_refused() {
    let database = shared_postgres().create_database().await.unwrap();
    let out = db_command(&database, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    let db = shared_postgres().client_for(&database).await.unwrap();

    // An edited migration: the operator command names it.
    let released: String = db
        .query_one(
            "SELECT checksum FROM fado_schema_migrations WHERE version = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    db.batch_execute("UPDATE fado_schema_migrations SET checksum = 'edited' WHERE version = 1")
        .await
        .unwrap();
    let out = db_command(&database, &["migrate"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("migration 1 (catalog) was changed"),
        "{}",
        text(&out)
    );

    // A schema from a newer FaDO: the API refuses to serve, and says why.
    db.execute(
        "UPDATE fado_schema_migrations SET checksum = $1 WHERE version = 1",
        &[&released],
    )
    .await
    .unwrap();
    db.batch_execute(
        "INSERT INTO fado_schema_migrations (version, name, checksum) VALUES (99, 'future', 'x')",
    )
    .await
    .unwrap();
    let o = Orchestrator::start_on(database.clone()).await.unwrap();
    let (s, b) = o.api("GET", "/api/clusters", None).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["code"], "schema_mismatch", "{b}");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("newer"),
        "{b}"
    );
    let out = db_command(&database, &["status"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("version 99"), "{}", text(&out));
}
