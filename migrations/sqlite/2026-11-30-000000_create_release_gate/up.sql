-- The release gate: releases awaiting approval, the approvers asked about each
-- (with their decision), the one-time links mailed to them (by the SHA-256 of
-- the token only), the outbox of work done after the pipeline has its answer
-- (fetching approvers, mails, reminders), and the gate's append-only audit.
CREATE TABLE releases (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    team_project TEXT NOT NULL,
    release_id TEXT NOT NULL,
    release_name TEXT NOT NULL,
    component TEXT NULL,
    environment TEXT NULL,
    version TEXT NULL,
    requested_by TEXT NULL,
    required_approvals INTEGER NULL,
    expires_in_s BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NULL,
    needed INTEGER NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT NULL
);
CREATE UNIQUE INDEX releases_key ON releases (team_project, release_id);
CREATE INDEX releases_created ON releases (created_at, seq);
CREATE INDEX releases_pending ON releases (state, expires_at);

CREATE TABLE release_approvers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    release_seq BIGINT NOT NULL REFERENCES releases (seq),
    email TEXT NOT NULL,
    name TEXT NULL,
    may_approve SMALLINT NOT NULL,
    verdict TEXT NULL,
    comment TEXT NULL,
    decided_at BIGINT NULL,
    client_address TEXT NULL
);
CREATE UNIQUE INDEX release_approvers_once ON release_approvers (release_seq, email);

CREATE TABLE approval_links (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT NOT NULL,
    approver_seq BIGINT NOT NULL REFERENCES release_approvers (seq),
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX approval_links_token ON approval_links (token_hash);

CREATE TABLE gate_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key TEXT NOT NULL,
    release_seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    approver_seq BIGINT NULL,
    attempts INTEGER NOT NULL,
    next_at BIGINT NOT NULL,
    lease_until BIGINT NULL,
    last_error TEXT NULL,
    done_at BIGINT NULL
);
CREATE UNIQUE INDEX gate_outbox_once ON gate_outbox (dedupe_key);
CREATE INDEX gate_outbox_due ON gate_outbox (done_at, next_at);

CREATE TABLE gate_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    release_seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    client_address TEXT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX gate_audit_release ON gate_audit (release_seq, seq);

-- Tokens may be scoped to team projects, as they are to components.
ALTER TABLE tokens ADD COLUMN scope_team_projects TEXT NOT NULL DEFAULT '[]';
