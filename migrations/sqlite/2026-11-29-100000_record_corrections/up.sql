-- Operators correct a deployment (a wrong version, a wrong status, a deploy
-- left running by a crashed runner): every correction is kept, with the
-- deployment before and after, who made it and why. Append-only, like
-- deletions; read newest last with a deployment's detail.
CREATE TABLE corrections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    component TEXT NOT NULL,
    environment TEXT NOT NULL,
    reason TEXT NOT NULL,
    changes TEXT NOT NULL,
    before_snapshot TEXT NOT NULL,
    after_snapshot TEXT NOT NULL,
    corrected_by TEXT NOT NULL,
    corrected_at BIGINT NOT NULL
);
CREATE INDEX corrections_deployment ON corrections (deployment_id, seq);
