-- Rollbacks: a deployment said by its start or its finish to roll back to an
-- earlier version. The statistics read it with the other columns of the
-- covering index, so the index is rebuilt with it (still no table row read).
ALTER TABLE deployments ADD COLUMN rollback SMALLINT NOT NULL DEFAULT 0;
DROP INDEX deployments_component_anchor;
CREATE INDEX deployments_component_anchor ON deployments
    (component, environment, anchor_at, seq, state, started_at, finished_at, duration_us, rollback);

-- The commits each deployment ships, for the lead time for changes. Keyed by
-- the deployment's seq, which the covering index above holds: the statistics
-- join the two without visiting a deployment row. `position` is the commit's
-- place in the list sent (0: the commit deployed).
CREATE TABLE deployment_commits (
    deployment_seq INTEGER NOT NULL REFERENCES deployments (seq) ON DELETE CASCADE,
    sha TEXT NOT NULL,
    committed_at BIGINT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (deployment_seq, sha)
);
