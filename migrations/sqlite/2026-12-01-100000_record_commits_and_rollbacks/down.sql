DROP TABLE deployment_commits;
DROP INDEX deployments_component_anchor;
CREATE INDEX deployments_component_anchor ON deployments
    (component, environment, anchor_at, seq, state, started_at, finished_at, duration_us);
ALTER TABLE deployments DROP COLUMN rollback;
