-- Operators correct a deployment (a wrong version, a wrong status, a deploy
-- left running by a crashed runner): every correction is kept, with the
-- deployment before and after, who made it and why. Append-only, like
-- deletions; read newest last with a deployment's detail.
CREATE TABLE corrections (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    deployment_id CHAR(36) NOT NULL,
    component VARCHAR(128) NOT NULL,
    environment VARCHAR(64) NOT NULL,
    reason TEXT NOT NULL,
    changes TEXT NOT NULL,
    before_snapshot TEXT NOT NULL,
    after_snapshot TEXT NOT NULL,
    corrected_by VARCHAR(128) NOT NULL,
    corrected_at BIGINT NOT NULL,
    KEY corrections_deployment (deployment_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
