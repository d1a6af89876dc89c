-- Operators may remove a deployment (a test run, a mistake); the removal itself
-- is kept, with what was removed, so the ledger's corrections stay auditable.
CREATE TABLE deletions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    component TEXT NOT NULL,
    environment TEXT NOT NULL,
    events_removed BIGINT NOT NULL,
    snapshot TEXT NOT NULL,
    deleted_at BIGINT NOT NULL
);
CREATE INDEX deletions_deleted_at ON deletions (deleted_at);
