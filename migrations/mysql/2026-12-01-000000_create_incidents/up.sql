-- Incidents: a component in an environment broken from started_at until
-- resolved_at (NULL while open), with the deployment that caused it if one
-- is known. Their restore times are reported beside the failure-streak
-- figure. `fingerprint` tells a retried opening from another incident under
-- the same client-chosen id.
CREATE TABLE incidents (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id CHAR(36) NOT NULL,
    component VARCHAR(128) NOT NULL,
    environment VARCHAR(64) NOT NULL,
    title VARCHAR(256) NULL,
    summary TEXT NULL,
    cause_deployment_id CHAR(36) NULL,
    started_at BIGINT NOT NULL,
    resolved_at BIGINT NULL,
    fingerprint CHAR(64) NOT NULL,
    created_by VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE KEY incidents_id (id),
    -- The statistics' read (one component and environment, a window of
    -- starts) and a listing filtered by component; resolved_at makes the
    -- first index-only.
    KEY incidents_component_started (component, environment, started_at, resolved_at),
    -- The listing, newest first, by (started_at, seq).
    KEY incidents_started (started_at, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
