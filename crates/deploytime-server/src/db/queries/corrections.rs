//! Corrections: an operator's change to a deployment, applied with the same
//! revision check as a store call and kept, with before and after, in an
//! append-only table.

use deploytime_core::Deployment;
use deploytime_core::correction::{self, Correction, CorrectionRefused};
use deploytime_core::time::from_micros;
use deploytime_core::wire::CorrectionView;
use diesel::prelude::*;

use super::deployments::{find_deployment_row, update_deployment};
use crate::db::connection::DbConnection;
use crate::db::models::{DeploymentRow, DeploymentSnapshot};
use crate::db::schema::corrections;

/// What became of a correction.
#[derive(Debug)]
pub(crate) enum Corrected {
    /// Applied: the deployment as it now is, at this revision.
    Applied {
        deployment: Deployment,
        revision: i32,
    },
    NotFound,
    /// The deployment is not at the revision the caller read (`If-Match`), or
    /// changed while the correction was applied.
    Stale {
        current: i32,
    },
    /// The domain refused it for this deployment.
    Refused(CorrectionRefused),
}

/// Applies `correction` to the deployment `id` if it is at `expected_revision`
/// (when given), records it, and returns the outcome; all or nothing.
pub(crate) fn correct_deployment(
    conn: &mut DbConnection,
    id: &str,
    correction: &Correction,
    expected_revision: Option<i32>,
    corrected_by: &str,
    corrected_at: i64,
) -> QueryResult<Corrected> {
    conn.transaction(|conn| {
        let Some(row) = find_deployment_row(conn, id)? else {
            return Ok(Corrected::NotFound);
        };
        if expected_revision.is_some_and(|expected| expected != row.revision) {
            return Ok(Corrected::Stale {
                current: row.revision,
            });
        }
        let (revision, created_at) = (row.revision, row.created_at);
        let before_row = row.clone();
        let before = row.into_deployment()?;
        let after = match correction.apply(&before) {
            Ok(after) => after,
            Err(refused) => return Ok(Corrected::Refused(refused)),
        };
        let after_row =
            DeploymentRow::from_deployment(&after, revision + 1, created_at, corrected_at);
        if update_deployment(conn, &after_row, revision)? != 1 {
            // Another writer (a finish, another correction) got there first.
            let current = find_deployment_row(conn, id)?.map_or(revision, |r| r.revision);
            return Ok(Corrected::Stale { current });
        }
        let snapshot = |row: &DeploymentRow| {
            serde_json::to_string(&DeploymentSnapshot::from(row)).unwrap_or_else(|_| "{}".into())
        };
        diesel::insert_into(corrections::table)
            .values((
                corrections::deployment_id.eq(id),
                corrections::component.eq(after.component.as_str()),
                corrections::environment.eq(after.environment.as_str()),
                corrections::reason.eq(&correction.reason),
                corrections::changes
                    .eq(serde_json::to_string(&correction::changes(&before, &after))
                        .unwrap_or_else(|_| "{}".into())),
                corrections::before_snapshot.eq(snapshot(&before_row)),
                corrections::after_snapshot.eq(snapshot(&after_row)),
                corrections::corrected_by.eq(corrected_by),
                corrections::corrected_at.eq(corrected_at),
            ))
            .execute(conn)?;
        Ok(Corrected::Applied {
            deployment: after,
            revision: revision + 1,
        })
    })
}

/// The corrections of a deployment, oldest first.
pub(crate) fn corrections_of(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Vec<CorrectionView>> {
    let rows: Vec<(i64, String, String, String)> = corrections::table
        .filter(corrections::deployment_id.eq(id))
        .order(corrections::seq.asc())
        .select((
            corrections::corrected_at,
            corrections::corrected_by,
            corrections::reason,
            corrections::changes,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(at, by, reason, changes)| {
            Ok(CorrectionView {
                corrected_at: from_micros(at),
                corrected_by: by,
                reason,
                changes: serde_json::from_str(&changes).map_err(|e| {
                    diesel::result::Error::DeserializationError(
                        format!("a stored correction of {id} is unreadable: {e}").into(),
                    )
                })?,
            })
        })
        .collect()
}
