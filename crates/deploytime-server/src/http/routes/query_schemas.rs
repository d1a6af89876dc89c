//! Exact OpenAPI schemas of the query parameters, so that generated clients
//! and property-based testing see what the server accepts: bounds, choices,
//! patterns. An empty value counts as absent (a shell's unset `$STATE`), and
//! each schema says so.

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// One of `choices`, or empty.
fn choice(choices: &[&str], description: &str) -> RefOr<Schema> {
    let mut values: Vec<&str> = choices.to_vec();
    values.push("");
    string()
        .enum_values(Some(values))
        .description(Some(description))
        .build()
        .into()
}

/// A name of at most `max` characters, as the domain accepts them, or empty.
fn name(max: usize) -> RefOr<Schema> {
    string()
        .pattern(Some(format!(
            "^$|^[A-Za-z0-9][A-Za-z0-9._/:-]{{0,{}}}$",
            max - 1
        )))
        .build()
        .into()
}

pub(crate) fn component() -> RefOr<Schema> {
    name(deploytime_core::Component::MAX_CHARS)
}

/// One environment, or empty.
pub(crate) fn environment() -> RefOr<Schema> {
    name(deploytime_core::Environment::MAX_CHARS)
}

/// One environment or several, comma-separated, or empty.
pub(crate) fn environments() -> RefOr<Schema> {
    let one = format!(
        "[A-Za-z0-9][A-Za-z0-9._/:-]{{0,{}}}",
        deploytime_core::Environment::MAX_CHARS - 1
    );
    string()
        .pattern(Some(format!("^$|^{one}(,{one})*$")))
        .description(Some("one environment, or several separated by commas"))
        .build()
        .into()
}

/// An RFC 3339 date-time with an offset, or empty.
pub(crate) fn instant() -> RefOr<Schema> {
    let any_of = AnyOfBuilder::new()
        .item(
            string()
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .build(),
        )
        .item(string().enum_values(Some([""])).build())
        .description(Some("RFC 3339 with an offset, e.g. 2026-11-01T00:00:00Z"))
        .build();
    RefOr::T(Schema::AnyOf(any_of))
}

pub(crate) fn state() -> RefOr<Schema> {
    let names: Vec<&str> = deploytime_core::ReportedState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    choice(&names, "running, succeeded, failed, cancelled or abandoned")
}

pub(crate) fn phase() -> RefOr<Schema> {
    choice(&["start", "finish"], "start or finish")
}

pub(crate) fn format() -> RefOr<Schema> {
    choice(
        &["json", "csv"],
        "json (default) or csv: every matching row, streamed",
    )
}

pub(crate) fn group_by() -> RefOr<Schema> {
    choice(
        &[
            "component",
            "environment",
            "component,environment",
            "environment,component",
            "none",
        ],
        "component (default), environment, component,environment or none",
    )
}

pub(crate) fn status() -> RefOr<Schema> {
    choice(
        &["success"],
        "`success`: durations of successful deployments only",
    )
}

pub(crate) fn change_failure() -> RefOr<Schema> {
    choice(
        &["failed", "failed_or_rolled_back"],
        "failed (default): failed / finished; failed_or_rolled_back: a deployment followed by a rollback counts as a failure too",
    )
}

pub(crate) fn interval() -> RefOr<Schema> {
    choice(&["day"], "`day`: add daily buckets")
}

/// `next_cursor` of the previous page.
pub(crate) fn cursor() -> RefOr<Schema> {
    string()
        .pattern(Some(super::params::CURSOR_PATTERN))
        .description(Some("`next_cursor` of the previous page"))
        .build()
        .into()
}
