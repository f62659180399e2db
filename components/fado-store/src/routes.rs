//! The published route tables Postgres keeps (`route_tables`, written by
//! the planner with each placement): the router's fallback when its
//! key-value store cannot answer.

use fado_model::{BucketRoute, MissingHeader, RouteMeta, RouteTable, RouteTarget, SelectionPolicy};

use crate::{Db, Param, Result, text_array};

/// The newest stored table whole, if any (the API's `/api/routes`).
pub fn latest(db: &Db) -> Result<Option<RouteTable>> {
    let rows = db.query(
        "SELECT routes FROM route_tables ORDER BY version DESC LIMIT 1",
        &[],
    )?;
    rows.first()
        .map(|r| {
            serde_json::from_value(r.json("routes")?).map_err(|e| crate::StoreError::Decode {
                column: "routes".into(),
                problem: format!("the stored route table is unreadable: {e}"),
            })
        })
        .transpose()
}

/// What the newest stored table says about some buckets.
#[derive(Debug, Clone)]
pub struct StoredRoutes {
    pub meta: RouteMeta,
    /// The routes of the buckets asked for that the table has.
    pub routes: Vec<BucketRoute>,
    /// The route over every deployment (requests without the match header).
    pub any: Vec<RouteTarget>,
}

/// The newest stored table's settings and the routes of `buckets` (read
/// out in the database, so a large table is not sent whole); `None` when
/// the planner has stored no table yet.
pub fn newest(db: &Db, buckets: &[String]) -> Result<Option<StoredRoutes>> {
    let rows = db.query(
        "SELECT t.routes->>'match_header' AS match_header,
                t.routes->>'missing_header' AS missing_header,
                t.routes->>'default_policy' AS default_policy,
                COALESCE((SELECT jsonb_agg(r) FROM jsonb_array_elements(t.routes->'routes') r
                          WHERE r->>'bucket' = ANY($1)), '[]'::jsonb) AS routes,
                COALESCE(t.routes->'any', '[]'::jsonb) AS any
         FROM route_tables t ORDER BY t.version DESC LIMIT 1",
        &[text_array(buckets)] as &[Param],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    fn parse<T: serde::de::DeserializeOwned>(column: &str, v: serde_json::Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| crate::StoreError::Decode {
            column: column.to_string(),
            problem: e.to_string(),
        })
    }
    Ok(Some(StoredRoutes {
        meta: RouteMeta {
            match_header: row.str("match_header")?,
            missing_header: row.parse("missing_header", MissingHeader::parse)?,
            default_policy: row.parse("default_policy", SelectionPolicy::parse)?,
        },
        routes: parse("routes", row.json("routes")?)?,
        any: parse("any", row.json("any")?)?,
    }))
}

/// The newest stored table, whole (to republish it).
pub fn newest_table(db: &Db) -> Result<Option<RouteTable>> {
    let rows = db.query(
        "SELECT routes FROM route_tables ORDER BY version DESC LIMIT 1",
        &[],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    serde_json::from_value(row.json("routes")?)
        .map(Some)
        .map_err(|e| crate::StoreError::Decode {
            column: "routes".into(),
            problem: e.to_string(),
        })
}

/// The buckets whose express route (see `express_routes`) was published
/// at catalog generation `up_to` or before.
pub fn express_notes(db: &Db, up_to: i64) -> Result<Vec<String>> {
    let rows = db.query(
        "SELECT b.name FROM express_routes e JOIN buckets b ON b.id = e.bucket_id
         WHERE e.generation <= $1 ORDER BY b.name",
        &[Param::Int64(up_to)],
    )?;
    rows.iter().map(|r| r.str("name")).collect()
}

/// Drops the notes of express routes published up to `generation` (the
/// planner has brought them in line with its table).
pub fn drop_express_notes(db: &Db, generation: i64) -> Result<()> {
    db.execute(
        "DELETE FROM express_routes WHERE generation <= $1",
        &[Param::Int64(generation)],
    )?;
    Ok(())
}
