-- Incidents: a component in an environment broken from started_at until
-- resolved_at (NULL while open), with the deployment that caused it if one
-- is known. Their restore times are reported beside the failure-streak
-- figure. `fingerprint` tells a retried opening from another incident under
-- the same client-chosen id.
CREATE TABLE incidents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    component TEXT NOT NULL,
    environment TEXT NOT NULL,
    title TEXT NULL,
    summary TEXT NULL,
    cause_deployment_id TEXT NULL,
    started_at BIGINT NOT NULL,
    resolved_at BIGINT NULL,
    fingerprint TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX incidents_id ON incidents (id);
-- The statistics' read (one component and environment, a window of starts)
-- and a listing filtered by component; resolved_at makes the first
-- index-only.
CREATE INDEX incidents_component_started ON incidents (component, environment, started_at, resolved_at);
-- The listing, newest first, by (started_at, seq).
CREATE INDEX incidents_started ON incidents (started_at, seq);
