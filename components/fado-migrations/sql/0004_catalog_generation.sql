-- The catalog generation gets a row of its own. Catalog writes bump it; the
-- planner's REPEATABLE READ round used to write its progress into the same
-- row, so every catalog change committed during a round made the round fail
-- with a serialization error and start over (at tens of route changes a
-- second, every round failed). Readers keep the planner_state view.
ALTER TABLE planner_state RENAME TO planner_progress;
CREATE TABLE catalog_generation (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    value  bigint NOT NULL
);
INSERT INTO catalog_generation (value) SELECT catalog_generation FROM planner_progress;
ALTER TABLE planner_progress DROP COLUMN catalog_generation;
COMMENT ON TABLE catalog_generation IS
    'Bumped by every catalog change in its own transaction; the planner plans up to the value it reads.';
COMMENT ON TABLE planner_progress IS
    'Written by the planner only: the generation it last planned and the route table it published.';
CREATE VIEW planner_state AS
    SELECT g.value AS catalog_generation, p.planned_generation, p.routes_version,
           p.routes_digest, p.planned_at
    FROM catalog_generation g CROSS JOIN planner_progress p;
