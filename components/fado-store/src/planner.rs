//! What the planner reads and writes besides the snapshot it plans from
//! ([`crate::snapshot`]): its progress (`planner_progress`, read through
//! the `planner_state` view with the catalog generation), the replica
//! states and shortfalls its plans decide, and the route tables it keeps
//! (`route_tables`; [`crate::routes`] reads them).

use fado_model::RouteTable;

use crate::{Db, Param, Result, id_array, text_array};

/// How far planning has caught up with the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub catalog_generation: i64,
    pub planned_generation: i64,
    /// The newest stored table's version (0 before the first).
    pub routes_version: i64,
    /// The digest of that table's contents, to tell whether a round
    /// changed anything.
    pub routes_digest: Option<String>,
}

pub fn progress(db: &Db) -> Result<Progress> {
    let rows = db.query(
        "SELECT catalog_generation, planned_generation, routes_version, routes_digest FROM planner_state",
        &[],
    )?;
    let r = rows.one()?;
    Ok(Progress {
        catalog_generation: r.i64("catalog_generation")?,
        planned_generation: r.i64("planned_generation")?,
        routes_version: r.i64("routes_version")?,
        routes_digest: r.opt_str("routes_digest")?,
    })
}

/// Records a finished round: the generation it planned and the table it
/// left current.
pub fn record_round(db: &Db, generation: i64, routes_version: i64, digest: &str) -> Result<()> {
    db.execute(
        "UPDATE planner_progress SET planned_generation = $1, routes_version = $2, routes_digest = $3,
             planned_at = now()",
        &[
            Param::Int64(generation),
            Param::Int64(routes_version),
            Param::Str(digest.into()),
        ],
    )?;
    Ok(())
}

/// Makes replica `(buckets[i], storage[i])` pending: created, or reset if
/// it was on its way out.
pub fn replicas_pending(db: &Db, buckets: &[i64], storage: &[i64]) -> Result<()> {
    db.execute(
        "INSERT INTO replicas (bucket_id, storage_id, state)
         SELECT b, s, 'pending' FROM unnest($1::bigint[], $2::bigint[]) AS u(b, s)
         ON CONFLICT (bucket_id, storage_id)
         DO UPDATE SET state = 'pending', last_error = NULL, updated_at = now()",
        &[id_array(buckets), id_array(storage)],
    )?;
    Ok(())
}

/// Marks replica `(buckets[i], storage[i])` as being deleted.
pub fn replicas_deleting(db: &Db, buckets: &[i64], storage: &[i64]) -> Result<()> {
    db.execute(
        "UPDATE replicas r SET state = 'deleting', updated_at = now()
         FROM unnest($1::bigint[], $2::bigint[]) AS d(bucket_id, storage_id)
         WHERE r.bucket_id = d.bucket_id AND r.storage_id = d.storage_id",
        &[id_array(buckets), id_array(storage)],
    )?;
    Ok(())
}

/// Sets bucket `ids[i]`'s replica shortfall and its notes (lines of
/// `notes[i]`, none when empty).
pub fn set_shortfalls(db: &Db, ids: &[i64], shortfalls: &[i32], notes: &[String]) -> Result<()> {
    db.execute(
        "UPDATE buckets b SET replica_shortfall = u.shortfall,
             plan_notes = CASE WHEN u.notes = '' THEN '{}'::text[] ELSE string_to_array(u.notes, E'\\n') END
         FROM unnest($1::bigint[], $2::integer[], $3::text[]) AS u(id, shortfall, notes)
         WHERE b.id = u.id",
        &[
            id_array(ids),
            Param::ArrayInt32(shortfalls.iter().copied().map(Some).collect()),
            text_array(notes),
        ],
    )?;
    Ok(())
}

/// Stores `table` (under its version) and drops all but the newest `keep`.
pub fn store_route_table(db: &Db, table: &RouteTable, keep: i64) -> Result<()> {
    let json = serde_json::to_vec(table).map_err(|e| crate::StoreError::Other(e.to_string()))?;
    db.execute(
        "INSERT INTO route_tables (version, routes) VALUES ($1, $2)",
        &[Param::Int64(table.version), Param::Jsonb(json)],
    )?;
    db.execute(
        "DELETE FROM route_tables WHERE version <= $1",
        &[Param::Int64(table.version - keep)],
    )?;
    Ok(())
}
