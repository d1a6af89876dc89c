-- The release gate: releases awaiting approval, the approvers asked about each
-- (with their decision), the one-time links mailed to them (by the SHA-256 of
-- the token only), the outbox of work done after the pipeline has its answer
-- (fetching approvers, mails, reminders), and the gate's append-only audit.
CREATE TABLE releases (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    team_project VARCHAR(128) NOT NULL,
    release_id VARCHAR(128) NOT NULL,
    release_name VARCHAR(256) NOT NULL,
    component VARCHAR(128) NULL,
    environment VARCHAR(64) NULL,
    version VARCHAR(128) NULL,
    requested_by VARCHAR(254) NULL,
    required_approvals INT NULL,
    expires_in_s BIGINT NOT NULL,
    fingerprint CHAR(64) NOT NULL,
    state VARCHAR(16) NOT NULL,
    reason TEXT NULL,
    needed INT NULL,
    created_by VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT NULL,
    UNIQUE KEY releases_key (team_project, release_id),
    KEY releases_created (created_at, seq),
    KEY releases_pending (state, expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE release_approvers (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    release_seq BIGINT NOT NULL,
    email VARCHAR(254) NOT NULL,
    name VARCHAR(128) NULL,
    may_approve SMALLINT NOT NULL,
    verdict VARCHAR(8) NULL,
    comment TEXT NULL,
    decided_at BIGINT NULL,
    client_address VARCHAR(64) NULL,
    UNIQUE KEY release_approvers_once (release_seq, email),
    CONSTRAINT release_approvers_release FOREIGN KEY (release_seq) REFERENCES releases (seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE approval_links (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    token_hash CHAR(64) NOT NULL,
    approver_seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE KEY approval_links_token (token_hash),
    CONSTRAINT approval_links_approver FOREIGN KEY (approver_seq) REFERENCES release_approvers (seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE gate_outbox (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    dedupe_key VARCHAR(64) NOT NULL,
    release_seq BIGINT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    approver_seq BIGINT NULL,
    attempts INT NOT NULL,
    next_at BIGINT NOT NULL,
    lease_until BIGINT NULL,
    last_error TEXT NULL,
    done_at BIGINT NULL,
    UNIQUE KEY gate_outbox_once (dedupe_key),
    KEY gate_outbox_due (done_at, next_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE gate_audit (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    release_seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    event VARCHAR(32) NOT NULL,
    actor VARCHAR(254) NOT NULL,
    client_address VARCHAR(64) NULL,
    detail TEXT NOT NULL,
    KEY gate_audit_release (release_seq, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Tokens may be scoped to team projects, as they are to components.
ALTER TABLE tokens ADD COLUMN scope_team_projects TEXT NOT NULL DEFAULT '[]';
