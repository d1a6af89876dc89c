//! The tables, as diesel sees them. Written by hand to match both
//! `migrations/sqlite` and `migrations/mysql`, which must stay in step.

diesel::table! {
    deployments (seq) {
        seq -> BigInt,
        id -> Text,
        component -> Text,
        environment -> Text,
        version -> Nullable<Text>,
        owner -> Nullable<Text>,
        state -> Text,
        status -> Nullable<Text>,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        duration_us -> Nullable<BigInt>,
        anchor_at -> BigInt,
        revision -> Integer,
        created_at -> BigInt,
        updated_at -> BigInt,
        rollback -> SmallInt,
    }
}

diesel::table! {
    /// The commits each deployment ships (0: the commit deployed).
    deployment_commits (deployment_seq, sha) {
        deployment_seq -> BigInt,
        sha -> Text,
        committed_at -> BigInt,
        position -> Integer,
    }
}

diesel::table! {
    events (seq) {
        seq -> BigInt,
        id -> Text,
        deployment_id -> Text,
        phase -> Text,
        component -> Text,
        environment -> Text,
        status -> Nullable<Text>,
        version -> Nullable<Text>,
        owner -> Nullable<Text>,
        occurred_at -> BigInt,
        received_at -> BigInt,
        attributes -> Text,
        fingerprint -> Text,
    }
}

diesel::table! {
    /// Operators' corrections: every deployment removed, with what it was.
    deletions (seq) {
        seq -> BigInt,
        deployment_id -> Text,
        component -> Text,
        environment -> Text,
        events_removed -> BigInt,
        snapshot -> Text,
        deleted_at -> BigInt,
    }
}

diesel::table! {
    /// API tokens, by the SHA-256 of the token (hex); the token itself is never stored.
    tokens (seq) {
        seq -> BigInt,
        name -> Text,
        role -> Text,
        token_hash -> Text,
        scope_components -> Text,
        scope_environments -> Text,
        created_at -> BigInt,
        scope_team_projects -> Text,
    }
}

diesel::table! {
    /// Operators' corrections: every change to a deployment, with before and after.
    corrections (seq) {
        seq -> BigInt,
        deployment_id -> Text,
        component -> Text,
        environment -> Text,
        reason -> Text,
        /// JSON object: field -> {before, after}.
        changes -> Text,
        before_snapshot -> Text,
        after_snapshot -> Text,
        corrected_by -> Text,
        corrected_at -> BigInt,
    }
}

diesel::table! {
    /// Releases awaiting (or past) approval.
    releases (seq) {
        seq -> BigInt,
        team_project -> Text,
        release_id -> Text,
        release_name -> Text,
        component -> Nullable<Text>,
        environment -> Nullable<Text>,
        version -> Nullable<Text>,
        requested_by -> Nullable<Text>,
        required_approvals -> Nullable<Integer>,
        expires_in_s -> BigInt,
        fingerprint -> Text,
        state -> Text,
        reason -> Nullable<Text>,
        needed -> Nullable<Integer>,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        decided_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// The approvers asked about each release, and their decision.
    release_approvers (seq) {
        seq -> BigInt,
        release_seq -> BigInt,
        email -> Text,
        name -> Nullable<Text>,
        may_approve -> SmallInt,
        verdict -> Nullable<Text>,
        comment -> Nullable<Text>,
        decided_at -> Nullable<BigInt>,
        client_address -> Nullable<Text>,
    }
}

diesel::table! {
    /// One-time links, by the SHA-256 of the token (hex); the token is only in the mail.
    approval_links (seq) {
        seq -> BigInt,
        token_hash -> Text,
        approver_seq -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Work done after the pipeline has its answer: fetching approvers, mails, reminders.
    gate_outbox (seq) {
        seq -> BigInt,
        dedupe_key -> Text,
        release_seq -> BigInt,
        kind -> Text,
        approver_seq -> Nullable<BigInt>,
        attempts -> Integer,
        next_at -> BigInt,
        lease_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        done_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// The gate's append-only audit.
    gate_audit (seq) {
        seq -> BigInt,
        release_seq -> BigInt,
        at -> BigInt,
        event -> Text,
        actor -> Text,
        client_address -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::joinable!(deployment_commits -> deployments (deployment_seq));
diesel::joinable!(release_approvers -> releases (release_seq));
diesel::joinable!(approval_links -> release_approvers (approver_seq));

diesel::allow_tables_to_appear_in_same_query!(
    deployments,
    deployment_commits,
    events,
    deletions,
    tokens,
    corrections,
    releases,
    release_approvers,
    approval_links,
    gate_outbox,
    gate_audit,
);
