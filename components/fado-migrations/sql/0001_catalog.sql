-- FaDO catalog, version 1.
-- Names and zone labels are DNS-label-like so they are safe in URLs, logs and
-- Redis keys. Object keys use the "C" collation: byte order, as S3 lists them.

CREATE TABLE clusters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$'),
    zones       text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clusters_zones ON clusters USING gin (zones);

CREATE TABLE faas_deployments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (name ~ '^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$'),
    cluster_id     bigint NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    platform       text NOT NULL CHECK (platform IN ('openfaas', 'spin', 'knative', 'lambda', 'other')),
    base_url       text NOT NULL CHECK (base_url ~ '^https?://'),
    path_template  text NOT NULL,
    labels         text[] NOT NULL DEFAULT '{}',
    timeout_ms     integer NOT NULL DEFAULT 30000 CHECK (timeout_ms BETWEEN 1 AND 3600000),
    health         text NOT NULL DEFAULT 'unknown' CHECK (health IN ('unknown', 'healthy', 'unhealthy')),
    health_detail  text,
    health_checked_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX faas_deployments_cluster ON faas_deployments (cluster_id);

CREATE TABLE storage_deployments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (name ~ '^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$'),
    cluster_id     bigint NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    endpoint       text NOT NULL CHECK (endpoint ~ '^https?://'),
    region         text NOT NULL DEFAULT 'us-east-1',
    path_style     boolean NOT NULL DEFAULT true,
    access_key     text NOT NULL,
    -- AES-256-GCM: 12-byte nonce followed by ciphertext and tag. Never returned by the API.
    secret_key_enc bytea NOT NULL,
    health         text NOT NULL DEFAULT 'unknown' CHECK (health IN ('unknown', 'healthy', 'unhealthy')),
    health_detail  text,
    health_checked_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX storage_deployments_cluster ON storage_deployments (cluster_id);

CREATE TABLE buckets (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'),
    -- RESTRICT: a storage deployment holding a master copy cannot disappear.
    master_storage_id   bigint NOT NULL REFERENCES storage_deployments (id) ON DELETE RESTRICT,
    allowed_zones       text[] NOT NULL DEFAULT '{}',
    target_replicas     integer NOT NULL DEFAULT 0 CHECK (target_replicas BETWEEN 0 AND 64),
    -- When true, bucket_replica_overrides lists the replicas (possibly none).
    replica_override    boolean NOT NULL DEFAULT false,
    -- When true, bucket_route_overrides lists the FaaS deployments to route to.
    route_override      boolean NOT NULL DEFAULT false,
    route_policy        text,
    -- Written by the planner: replicas it could not place, and why.
    replica_shortfall   integer NOT NULL DEFAULT 0,
    plan_notes          text[] NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX buckets_master ON buckets (master_storage_id);

CREATE TABLE bucket_replica_overrides (
    bucket_id   bigint NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    storage_id  bigint NOT NULL REFERENCES storage_deployments (id) ON DELETE CASCADE,
    PRIMARY KEY (bucket_id, storage_id)
);
CREATE INDEX bucket_replica_overrides_storage ON bucket_replica_overrides (storage_id);

CREATE TABLE bucket_route_overrides (
    bucket_id   bigint NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    faas_id     bigint NOT NULL REFERENCES faas_deployments (id) ON DELETE CASCADE,
    PRIMARY KEY (bucket_id, faas_id)
);
CREATE INDEX bucket_route_overrides_faas ON bucket_route_overrides (faas_id);

CREATE TABLE replicas (
    bucket_id           bigint NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    storage_id          bigint NOT NULL REFERENCES storage_deployments (id) ON DELETE CASCADE,
    state               text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'syncing', 'ready', 'deleting', 'failed')),
    last_sync_at        timestamptz,
    lag_objects         bigint NOT NULL DEFAULT 0 CHECK (lag_objects >= 0),
    lag_bytes           bigint NOT NULL DEFAULT 0 CHECK (lag_bytes >= 0),
    oldest_unsynced_at  timestamptz,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket_id, storage_id)
);
CREATE INDEX replicas_storage ON replicas (storage_id);
CREATE INDEX replicas_state ON replicas (state) WHERE state <> 'ready';

CREATE TABLE objects (
    bucket_id     bigint NOT NULL REFERENCES buckets (id) ON DELETE CASCADE,
    key           text COLLATE "C" NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    etag          text NOT NULL,
    content_type  text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket_id, key)
);

-- Per-bucket totals, kept by statement-level triggers so listings and the
-- dashboard never count a million rows.
CREATE TABLE bucket_stats (
    bucket_id     bigint PRIMARY KEY REFERENCES buckets (id) ON DELETE CASCADE,
    object_count  bigint NOT NULL DEFAULT 0,
    total_bytes   bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION fado_bucket_stats_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bucket_stats (bucket_id) VALUES (NEW.id);
    RETURN NEW;
END $$;
CREATE TRIGGER buckets_stats AFTER INSERT ON buckets
    FOR EACH ROW EXECUTE FUNCTION fado_bucket_stats_created();

CREATE FUNCTION fado_objects_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bucket_stats s SET object_count = s.object_count + d.n, total_bytes = s.total_bytes + d.bytes
    FROM (SELECT bucket_id, count(*) AS n, sum(size) AS bytes FROM new_rows GROUP BY bucket_id) d
    WHERE s.bucket_id = d.bucket_id;
    RETURN NULL;
END $$;
CREATE FUNCTION fado_objects_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bucket_stats s SET object_count = s.object_count - d.n, total_bytes = s.total_bytes - d.bytes
    FROM (SELECT bucket_id, count(*) AS n, sum(size) AS bytes FROM old_rows GROUP BY bucket_id) d
    WHERE s.bucket_id = d.bucket_id;
    RETURN NULL;
END $$;
CREATE FUNCTION fado_objects_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bucket_stats s SET total_bytes = s.total_bytes + d.bytes
    FROM (SELECT n.bucket_id, sum(n.size - o.size) AS bytes
          FROM new_rows n JOIN old_rows o ON o.bucket_id = n.bucket_id AND o.key = n.key
          GROUP BY n.bucket_id) d
    WHERE s.bucket_id = d.bucket_id;
    RETURN NULL;
END $$;
CREATE TRIGGER objects_inserted AFTER INSERT ON objects
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION fado_objects_inserted();
CREATE TRIGGER objects_deleted AFTER DELETE ON objects
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION fado_objects_deleted();
CREATE TRIGGER objects_updated AFTER UPDATE ON objects
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION fado_objects_updated();

-- Load-balancer settings: one row.
CREATE TABLE settings (
    id               boolean PRIMARY KEY DEFAULT true CHECK (id),
    default_policy   text NOT NULL DEFAULT 'round_robin',
    match_header     text NOT NULL DEFAULT 'X-FaDO-Bucket' CHECK (match_header ~ '^[A-Za-z0-9-]{1,64}$'),
    -- What an invocation without the header gets: 'reject' (400) or 'any' (every FaaS deployment).
    missing_header   text NOT NULL DEFAULT 'reject' CHECK (missing_header IN ('reject', 'any')),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings DEFAULT VALUES;

-- The replication job ledger. Jobs name their bucket by name so a job that
-- removes a bucket outlives the bucket's row.
CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('create_bucket', 'create_replica', 'sync_replica',
                         'copy_object', 'delete_object', 'delete_replica', 'delete_bucket')),
    bucket_name      text NOT NULL,
    storage_id       bigint REFERENCES storage_deployments (id) ON DELETE SET NULL,
    object_key       text COLLATE "C",
    state            text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    run_after        timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- At most one unfinished job per target: enqueueing twice is harmless.
CREATE UNIQUE INDEX jobs_one_active ON jobs (kind, bucket_name, coalesce(storage_id, 0), coalesce(object_key, ''))
    WHERE state IN ('queued', 'running');
CREATE INDEX jobs_claimable ON jobs (run_after, id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_state ON jobs (state, id);

-- Jobs against a storage deployment that is being deleted can never run;
-- finishing them first also keeps jobs_one_active intact when their
-- storage_id becomes NULL.
CREATE FUNCTION fado_storage_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET state = 'done', finished_at = now(), updated_at = now(),
        last_error = 'cancelled: storage deployment ' || OLD.name || ' was deleted'
    WHERE storage_id = OLD.id AND state IN ('queued', 'running');
    RETURN OLD;
END $$;
CREATE TRIGGER storage_deleted BEFORE DELETE ON storage_deployments
    FOR EACH ROW EXECUTE FUNCTION fado_storage_deleted();

-- A route override left naming no FaaS deployment (its deployments were
-- deleted, directly or with their cluster) would route nowhere: the bucket
-- falls back to its computed route.
CREATE FUNCTION fado_route_overrides_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE buckets b SET route_override = false, route_policy = NULL, updated_at = now()
    WHERE b.route_override AND b.id IN (SELECT bucket_id FROM gone)
      AND NOT EXISTS (SELECT 1 FROM bucket_route_overrides o WHERE o.bucket_id = b.id);
    RETURN NULL;
END $$;
CREATE TRIGGER route_overrides_deleted AFTER DELETE ON bucket_route_overrides
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION fado_route_overrides_deleted();

-- Planner bookkeeping: catalog changes bump catalog_generation in their own
-- transaction; the planner records what it last planned and published.
CREATE TABLE planner_state (
    id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
    catalog_generation  bigint NOT NULL DEFAULT 1,
    planned_generation  bigint NOT NULL DEFAULT 0,
    routes_version      bigint NOT NULL DEFAULT 0,
    -- SHA-256 of the newest route table without its version.
    routes_digest       text,
    planned_at          timestamptz
);
INSERT INTO planner_state DEFAULT VALUES;

-- Published route tables, newest last; the router's fallback when Redis is down.
CREATE TABLE route_tables (
    version     bigint PRIMARY KEY,
    routes      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
