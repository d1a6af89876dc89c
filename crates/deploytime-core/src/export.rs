//! The CSV form of deployments and events, shared by the server's exports and
//! the command line's own CSV output so both write the same columns the same way.

use std::borrow::Cow;

/// The columns of a deployment, in order.
pub const DEPLOYMENT_COLUMNS: [&str; 11] = [
    "id",
    "component",
    "environment",
    "version",
    "owner",
    "state",
    "status",
    "started_at",
    "finished_at",
    "duration_seconds",
    // Last, so that a reader of the ten columns before it keeps working.
    "rollback",
];

/// The columns of an event, in order (`attributes` is one JSON object).
pub const EVENT_COLUMNS: [&str; 11] = [
    "id",
    "deployment_id",
    "phase",
    "component",
    "environment",
    "status",
    "version",
    "owner",
    "timestamp",
    "received_at",
    "attributes",
];

/// Prefixes a cell that a spreadsheet would otherwise evaluate as a formula
/// (`=`, `+`, `-`, `@`, tab, carriage return) with a `'`.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_the_rest_kept() {
        for formula in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(formula), format!("'{formula}"));
        }
        for plain in ["api", "exit-2", "", "v1.0", "a=b"] {
            assert_eq!(neutralise(plain), plain);
        }
    }
}
