-- Rollbacks: a deployment said by its start or its finish to roll back to an
-- earlier version. The statistics read it with the other columns of the
-- covering index, so the index is rebuilt with it (still no table row read).
-- One ALTER: one rebuild of the table.
ALTER TABLE deployments
    ADD COLUMN rollback SMALLINT NOT NULL DEFAULT 0,
    DROP INDEX deployments_component_anchor,
    ADD INDEX deployments_component_anchor
        (component, environment, anchor_at, seq, state, started_at, finished_at, duration_us, rollback);

-- The commits each deployment ships, for the lead time for changes. Keyed by
-- the deployment's seq, which the covering index above holds: the statistics
-- join the two without visiting a deployment row. `position` is the commit's
-- place in the list sent (0: the commit deployed).
CREATE TABLE deployment_commits (
    deployment_seq BIGINT NOT NULL,
    sha VARCHAR(64) NOT NULL,
    committed_at BIGINT NOT NULL,
    position INT NOT NULL,
    PRIMARY KEY (deployment_seq, sha),
    CONSTRAINT deployment_commits_deployment FOREIGN KEY (deployment_seq)
        REFERENCES deployments (seq) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
