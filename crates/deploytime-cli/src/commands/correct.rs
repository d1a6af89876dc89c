//! `deploytime correct`: an operator's correction of a recorded deployment,
//! sent with the revision it was read at, so that it applies to what was read
//! or not at all.

use deploytime_core::wire::{CorrectionBody, DeploymentDetail, paths};

use crate::api::{Api, Failure};
use crate::cli::{CorrectArgs, Format};
use crate::error::Error;
use crate::exit;
use crate::output::{deployments_table, print_json, print_table, write_deployments_csv};

fn failure(api: &Api, failure: Failure) -> Error {
    match failure {
        Failure::Refused(problem) => Error::Rejected(problem),
        Failure::Transient { cause, .. } => Error::Unreachable {
            url: api.base().to_owned(),
            cause,
        },
    }
}

pub fn correct(api: &Api, args: CorrectArgs) -> Result<u8, Error> {
    let path = paths::deployment(args.id);
    let current: DeploymentDetail = api.get_json(&path, &[]).map_err(|f| failure(api, f))?;
    let body = CorrectionBody {
        version: args.version,
        owner: args.owner,
        status: args.status,
        finished_at: args.finished_at,
        reason: args.reason,
    };
    let corrected: DeploymentDetail = api
        .patch_json(&path, &body, &format!("\"{}\"", current.revision))
        .map_err(|f| match f {
            Failure::Transient { cause, .. } => Error::Unreachable {
                url: api.base().to_owned(),
                cause: format!(
                    "{cause}; whether the correction was applied is unknown: `deploytime deployments` shows the deployment"
                ),
            },
            refused => failure(api, refused),
        })?;
    if let Some(last) = corrected.corrections.last() {
        let changed: Vec<String> = last
            .changes
            .iter()
            .map(|(field, change)| {
                format!(
                    "{field} {} -> {}",
                    change.before.as_deref().unwrap_or("-"),
                    change.after.as_deref().unwrap_or("-")
                )
            })
            .collect();
        eprintln!(
            "deploytime: corrected deployment {}: {}",
            corrected.deployment.id,
            changed.join(", ")
        );
    }
    match args.output {
        Format::Json => print_json(&corrected)?,
        Format::Csv => write_deployments_csv(std::io::stdout().lock(), &[corrected.deployment])?,
        Format::Table => print_table(&deployments_table(&[corrected.deployment]))?,
    }
    Ok(exit::OK)
}
