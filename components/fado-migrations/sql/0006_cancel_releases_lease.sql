-- Cancelling the jobs of a deleted storage deployment also ends their
-- leases, so an attempt still running against that storage finds its job
-- no longer its own when it reports back.
CREATE OR REPLACE FUNCTION fado_storage_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET state = 'done', finished_at = now(), updated_at = now(),
        lease_owner = NULL, lease_expires_at = NULL,
        last_error = 'cancelled: storage deployment ' || OLD.name || ' was deleted'
    WHERE storage_id = OLD.id AND state IN ('queued', 'running');
    RETURN OLD;
END $$;
COMMENT ON FUNCTION fado_storage_deleted() IS
    'Cancels the queued and running jobs of a storage deployment being deleted, ending their leases.';
