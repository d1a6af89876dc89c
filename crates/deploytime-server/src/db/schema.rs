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

diesel::allow_tables_to_appear_in_same_query!(deployments, events, deletions, tokens, corrections);
