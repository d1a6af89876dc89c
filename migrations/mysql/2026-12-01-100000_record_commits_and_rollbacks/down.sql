DROP TABLE deployment_commits;
ALTER TABLE deployments
    DROP INDEX deployments_component_anchor,
    ADD INDEX deployments_component_anchor
        (component, environment, anchor_at, seq, state, started_at, finished_at, duration_us),
    DROP COLUMN rollback;
