-- Timestamps are microseconds since the Unix epoch, UTC: exact, and compared,
-- indexed and subtracted the same way on SQLite and MySQL.

CREATE TABLE deployments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    component TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT,
    owner TEXT,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    status TEXT,
    started_at BIGINT,
    finished_at BIGINT,
    duration_us BIGINT,
    -- started_at, or finished_at for a deployment whose start was never seen:
    -- what listings sort and filter by.
    anchor_at BIGINT NOT NULL,
    -- Bumped by every update, so concurrent writers cannot both close a deployment.
    revision INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX deployments_component_finished ON deployments (component, environment, finished_at);
CREATE INDEX deployments_running ON deployments (component, environment, state, started_at);
CREATE INDEX deployments_anchor ON deployments (anchor_at, seq);
CREATE INDEX deployments_component_anchor ON deployments (component, environment, anchor_at, seq);

-- The append-only ledger: every accepted call, as it was received.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    phase TEXT NOT NULL CHECK (phase IN ('start', 'finish')),
    component TEXT NOT NULL,
    environment TEXT NOT NULL,
    status TEXT,
    version TEXT,
    owner TEXT,
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    attributes TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);

CREATE INDEX events_deployment ON events (deployment_id, seq);
CREATE INDEX events_component_occurred ON events (component, environment, occurred_at, seq);
CREATE INDEX events_occurred ON events (occurred_at, seq);
