-- Timestamps are microseconds since the Unix epoch, UTC: exact, and compared,
-- indexed and subtracted the same way on SQLite and MySQL, whatever the
-- session time zone. utf8mb4_bin makes names compare byte-wise, as on SQLite.

CREATE TABLE deployments (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id CHAR(36) NOT NULL,
    component VARCHAR(128) NOT NULL,
    environment VARCHAR(64) NOT NULL,
    version VARCHAR(128) NULL,
    owner VARCHAR(128) NULL,
    state VARCHAR(16) NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    status VARCHAR(64) NULL,
    started_at BIGINT NULL,
    finished_at BIGINT NULL,
    duration_us BIGINT NULL,
    -- started_at, or finished_at for a deployment whose start was never seen.
    anchor_at BIGINT NOT NULL,
    -- Bumped by every update, so concurrent writers cannot both close a deployment.
    revision INT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE KEY deployments_id (id),
    KEY deployments_component_finished (component, environment, finished_at),
    KEY deployments_running (component, environment, state, started_at),
    KEY deployments_anchor (anchor_at, seq),
    KEY deployments_component_anchor (component, environment, anchor_at, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The append-only ledger: every accepted call, as it was received.
CREATE TABLE events (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id CHAR(36) NOT NULL,
    deployment_id CHAR(36) NOT NULL,
    phase VARCHAR(8) NOT NULL CHECK (phase IN ('start', 'finish')),
    component VARCHAR(128) NOT NULL,
    environment VARCHAR(64) NOT NULL,
    status VARCHAR(64) NULL,
    version VARCHAR(128) NULL,
    owner VARCHAR(128) NULL,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    -- Up to 32 keys of 64 and values of 512 characters: more than TEXT holds.
    attributes MEDIUMTEXT NOT NULL,
    fingerprint CHAR(64) NOT NULL,
    UNIQUE KEY events_id (id),
    KEY events_deployment (deployment_id, seq),
    KEY events_component_occurred (component, environment, occurred_at, seq),
    KEY events_occurred (occurred_at, seq),
    CONSTRAINT events_deployment_fk FOREIGN KEY (deployment_id) REFERENCES deployments (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
