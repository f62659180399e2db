-- FaDO catalog, version 2: the replication data plane (object API,
-- notifications, reconcile sweeps, storage health, lag).

-- Storage deployments: the SHA-256 (hex) of the token its event
-- notifications must carry, and how many health checks in a row failed.
ALTER TABLE storage_deployments ADD COLUMN notify_token_sha256 text
    CHECK (notify_token_sha256 ~ '^[0-9a-f]{64}$');
ALTER TABLE storage_deployments ADD COLUMN health_failures integer NOT NULL DEFAULT 0;

-- Reconcile sweeps walk each master bucket a page at a time: the key the
-- next page starts after ('' = from the start) and when a walk last ended.
ALTER TABLE buckets ADD COLUMN reconcile_after text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE buckets ADD COLUMN reconciled_at timestamptz;
CREATE INDEX buckets_reconcile ON buckets (reconciled_at NULLS FIRST, id);

-- One *queued* job per target. A running job may coexist with a queued one
-- for the same target: it may be copying a version the queued job replaces,
-- and claims run them one after the other (see the replicator's ledger).
DROP INDEX jobs_one_active;
CREATE UNIQUE INDEX jobs_one_queued ON jobs (kind, bucket_name, coalesce(storage_id, 0), coalesce(object_key, ''))
    WHERE state = 'queued';
CREATE INDEX jobs_active_target ON jobs (bucket_name, storage_id, object_key) WHERE state IN ('queued', 'running');
-- Object jobs carry the size they are expected to move (lag in bytes), and
-- every job what it moved and how long its last attempt took.
ALTER TABLE jobs ADD COLUMN object_size bigint CHECK (object_size >= 0);
ALTER TABLE jobs ADD COLUMN bytes_copied bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN last_attempt_ms bigint;

-- Replica lag is computed from the ledger when read; the stored copies were
-- never kept current.
ALTER TABLE replicas DROP COLUMN lag_objects;
ALTER TABLE replicas DROP COLUMN lag_bytes;
ALTER TABLE replicas DROP COLUMN oldest_unsynced_at;
