-- Operators may remove a deployment (a test run, a mistake); the removal itself
-- is kept, with what was removed, so the ledger's corrections stay auditable.
CREATE TABLE deletions (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    deployment_id CHAR(36) NOT NULL,
    component VARCHAR(128) NOT NULL,
    environment VARCHAR(64) NOT NULL,
    events_removed BIGINT NOT NULL,
    snapshot TEXT NOT NULL,
    deleted_at BIGINT NOT NULL,
    KEY deletions_deleted_at (deleted_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
