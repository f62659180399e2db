-- Route overrides the catalog published to the route store as they
-- committed (express routes), noted in the same statement as the override.
-- The planner brings each in line with the table it planned from that
-- generation on (an override set and removed again can leave the table as
-- it was, and then nothing else would rewrite the bucket's route), then
-- drops the note.
CREATE TABLE express_routes (
    bucket_id   bigint PRIMARY KEY REFERENCES buckets (id) ON DELETE CASCADE,
    generation  bigint NOT NULL
);
COMMENT ON TABLE express_routes IS
    'Buckets whose route the catalog published as its override committed, with that catalog generation.';
