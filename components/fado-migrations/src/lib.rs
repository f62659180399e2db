//! FaDO's PostgreSQL schema as an ordered list of migrations, and the pure
//! decision of which ones a database still needs.
//!
//! Two executors apply them with the same protocol: the catalog component
//! (through `spin:postgres`, so it works under Spin as well as `fado`) before
//! it serves, and `fado db migrate` for operators. The protocol:
//!
//! 1. `SELECT pg_advisory_lock(LOCK_KEY)` on one session (concurrent
//!    migrators wait instead of racing);
//! 2. run [`BOOKKEEPING_SQL`], read `version, checksum` from
//!    `fado_schema_migrations` and call [`pending`];
//! 3. apply each pending migration in its own transaction, one statement at
//!    a time ([`Migration::statements`]: `spin:postgres` prepares what it
//!    runs, and a prepared statement holds one command), together with the
//!    `INSERT` from [`record_sql`];
//! 4. `SELECT pg_advisory_unlock(LOCK_KEY)`.
//!
//! A migration is never edited once released: [`pending`] refuses a database
//! whose recorded checksum differs, and one that is newer than this build.

use sha2::{Digest, Sha256};

/// One step of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog",
        sql: include_str!("../sql/0001_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "data_plane",
        sql: include_str!("../sql/0002_data_plane.sql"),
    },
    Migration {
        version: 3,
        name: "faas_health",
        sql: include_str!("../sql/0003_faas_health.sql"),
    },
    Migration {
        version: 4,
        name: "catalog_generation",
        sql: include_str!("../sql/0004_catalog_generation.sql"),
    },
    Migration {
        version: 5,
        name: "express_routes",
        sql: include_str!("../sql/0005_express_routes.sql"),
    },
    Migration {
        version: 6,
        name: "cancel_releases_lease",
        sql: include_str!("../sql/0006_cancel_releases_lease.sql"),
    },
];

/// The schema version this build expects.
pub const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Session advisory lock serialising migrators ("FADOMIGR" in ASCII).
pub const LOCK_KEY: i64 = 0x4641_444F_4D49_4752;

/// Creates the bookkeeping table if needed; safe to run every time.
pub const BOOKKEEPING_SQL: &str = "CREATE TABLE IF NOT EXISTS fado_schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

/// Reads what has been applied.
pub const APPLIED_SQL: &str =
    "SELECT version, checksum FROM fado_schema_migrations ORDER BY version";

/// A migration recorded in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: i32,
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "migration {version} ({name}) was changed after it was applied to this database \
         (recorded checksum {recorded}, this build has {expected}); restore the released migration"
    )]
    ChecksumMismatch {
        version: i32,
        name: &'static str,
        recorded: String,
        expected: String,
    },
    #[error(
        "the database has schema version {database}, newer than this build's {build}; \
         run a newer FaDO or restore a matching backup"
    )]
    DatabaseNewer { database: i32, build: i32 },
}

impl Migration {
    /// SHA-256 of the migration's SQL, hex-encoded.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// The migration's statements, in order, without their terminating `;`.
    pub fn statements(&self) -> Vec<&'static str> {
        split_statements(self.sql)
    }
}

/// Splits SQL text at top-level `;`, skipping those inside quotes ('...',
/// "..."), dollar-quoted bodies ($$...$$, $tag$...$tag$) and comments.
/// Statements that hold only whitespace and comments are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut meaningful = false;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &sql[i..];
        let skip = match bytes[i] {
            b'-' if rest.starts_with("--") => rest.find('\n').unwrap_or(rest.len()),
            b'/' if rest.starts_with("/*") => rest[2..].find("*/").map_or(rest.len(), |e| e + 4),
            q @ (b'\'' | b'"') => {
                meaningful = true;
                // A doubled quote is an escaped quote; scanning on handles it.
                rest[1..].find(q as char).map_or(rest.len(), |e| e + 2)
            }
            b'$' => {
                meaningful = true;
                match dollar_tag(rest) {
                    Some(tag) => rest[tag.len()..]
                        .find(tag)
                        .map_or(rest.len(), |e| e + 2 * tag.len()),
                    None => 1,
                }
            }
            b';' => {
                if meaningful {
                    out.push(sql[start..i].trim());
                }
                start = i + 1;
                meaningful = false;
                1
            }
            c => {
                meaningful |= !c.is_ascii_whitespace();
                1
            }
        };
        i += skip;
    }
    if meaningful {
        out.push(sql[start..].trim());
    }
    out
}

/// The `$tag$` opening a dollar-quoted string at the start of `s`, if any.
fn dollar_tag(s: &str) -> Option<&str> {
    let end = s[1..].find('$')? + 2;
    let tag = &s[..end];
    tag[1..end - 1]
        .bytes()
        .all(|b| b == b'_' || b.is_ascii_alphanumeric())
        .then_some(tag)
        .filter(|t| !t[1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The statement recording `m` as applied (parameters: none; values inlined
/// because they come from this build, not from users).
pub fn record_sql(m: &Migration) -> String {
    format!(
        "INSERT INTO fado_schema_migrations (version, name, checksum) VALUES ({}, '{}', '{}')",
        m.version,
        m.name.replace('\'', "''"),
        m.checksum()
    )
}

/// The migrations `applied` still lacks, in order, after checking that what
/// was applied matches this build.
pub fn pending(applied: &[Applied]) -> Result<Vec<&'static Migration>, MigrationError> {
    for a in applied {
        match MIGRATIONS.iter().find(|m| m.version == a.version) {
            None => {
                return Err(MigrationError::DatabaseNewer {
                    database: applied.iter().map(|a| a.version).max().unwrap_or(a.version),
                    build: LATEST,
                });
            }
            Some(m) => {
                let expected = m.checksum();
                if expected != a.checksum {
                    return Err(MigrationError::ChecksumMismatch {
                        version: m.version,
                        name: m.name,
                        recorded: a.checksum.clone(),
                        expected,
                    });
                }
            }
        }
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(m: &Migration) -> Applied {
        Applied {
            version: m.version,
            checksum: m.checksum(),
        }
    }

    #[test]
    fn versions_are_increasing_and_unique() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        assert_eq!(MIGRATIONS[0].version, 1);
    }

    #[test]
    fn fresh_database_needs_everything() {
        assert_eq!(pending(&[]).unwrap().len(), MIGRATIONS.len());
    }

    #[test]
    fn up_to_date_database_needs_nothing() {
        let all: Vec<Applied> = MIGRATIONS.iter().map(applied).collect();
        assert!(pending(&all).unwrap().is_empty());
    }

    #[test]
    fn edited_migration_is_refused() {
        let mut a = applied(&MIGRATIONS[0]);
        a.checksum = "0".repeat(64);
        assert!(matches!(
            pending(&[a]),
            Err(MigrationError::ChecksumMismatch { version: 1, .. })
        ));
    }

    #[test]
    fn newer_database_is_refused() {
        let a = Applied {
            version: LATEST + 1,
            checksum: String::new(),
        };
        let err = pending(&[a]).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let sql = "-- a comment; with a semicolon\n\
                   CREATE TABLE t (a text DEFAULT 'x;y');\n\
                   /* block; comment */\n\
                   CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                   BEGIN UPDATE t SET a = 'q'; RETURN NULL; END $$;\n\
                   SELECT $tag$ ; $$ ; $tag$, \"odd;name\" FROM t;\n\
                   SELECT $1::int;\n\
                   -- trailing comment only\n";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 4, "{parts:#?}");
        assert!(parts[0].ends_with("DEFAULT 'x;y')"));
        assert!(parts[1].contains("RETURN NULL; END $$"));
        assert!(parts[2].contains("\"odd;name\" FROM t"));
        assert_eq!(parts[3], "SELECT $1::int");
    }

    #[test]
    fn every_migration_splits_into_statements() {
        for m in MIGRATIONS {
            let statements = m.statements();
            assert!(
                statements.len() > 1,
                "migration {} did not split",
                m.version
            );
            assert!(
                statements
                    .iter()
                    .all(|s| !s.is_empty() && !s.ends_with(';'))
            );
        }
    }

    #[test]
    fn record_statement_quotes_names() {
        let sql = record_sql(&MIGRATIONS[0]);
        assert!(sql.starts_with("INSERT INTO fado_schema_migrations"));
        assert!(sql.contains(&MIGRATIONS[0].checksum()));
    }
}
