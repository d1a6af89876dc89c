//! The events the CLI sends, as the API's own body (`wire::EventBody`): built
//! once, with their `event_id` and timestamp fixed before the first attempt, so
//! that a retry or a spooled copy is the same event.

use std::collections::BTreeMap;

use chrono::Utc;
use deploytime_core::commits::Commit;
use deploytime_core::event::MAX_ATTRIBUTE_VALUE_CHARS;
use deploytime_core::time::truncate_to_micros;
use deploytime_core::wire::EventBody;
use deploytime_core::{Phase, Status};
use uuid::Uuid;

use crate::cli::{EventArgs, ReleaseLink};

/// A `start`, with the commits the deployment ships. The deployment id is
/// chosen here when not given, so that a `finish` can name it even while both
/// are still in the spool.
pub fn start(args: &EventArgs, commits: Vec<Commit>) -> EventBody {
    let deployment_id = args.deployment_id.unwrap_or_else(Uuid::now_v7);
    EventBody {
        commits,
        ..event(Phase::Start, args, None, Some(deployment_id))
    }
}

pub fn finish(args: &EventArgs, status: Status, deployment_id: Option<Uuid>) -> EventBody {
    event(Phase::Finish, args, Some(status), deployment_id)
}

fn event(
    phase: Phase,
    args: &EventArgs,
    status: Option<Status>,
    deployment_id: Option<Uuid>,
) -> EventBody {
    let mut attributes = if args.no_ci_metadata {
        BTreeMap::new()
    } else {
        ci_metadata(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    };
    attributes.extend(release_attributes(&args.release));
    // What the caller says wins over what was detected.
    attributes.extend(args.attributes.iter().cloned());
    EventBody {
        event_id: Some(Uuid::new_v4()),
        phase,
        component: args.component.clone(),
        environment: Some(args.environment.clone()),
        status,
        version: args.version.clone(),
        owner: args.owner.clone(),
        deployment_id,
        timestamp: Some(truncate_to_micros(Utc::now())),
        attributes,
        commits: Vec::new(),
        rollback: args.rollback,
    }
}

/// `release_id` and `team_project` of the release a deployment carries out,
/// the names the release has in the API, so that a deployment can be put
/// next to its release: the approval's wait is the release's `waited_seconds`,
/// the deploy's duration the deployment's.
pub fn release_attributes(link: &ReleaseLink) -> BTreeMap<String, String> {
    match (&link.release_id, &link.release_project) {
        (Some(id), Some(project)) => BTreeMap::from([
            ("release_id".to_owned(), id.clone()),
            ("team_project".to_owned(), project.clone()),
        ]),
        _ => BTreeMap::new(),
    }
}

/// The run, commit and run URL of the CI system this runs in, if any:
/// `ci.provider`, `ci.run_id`, `ci.commit`, `ci.run_url`. Values are cut to the
/// server's limit rather than have the whole event refused.
pub fn ci_metadata(var: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    let mut found: Vec<(&str, Option<String>)> = Vec::new();
    if var("GITHUB_ACTIONS").is_some() || var("GITHUB_RUN_ID").is_some() {
        let run_url = match (
            var("GITHUB_SERVER_URL"),
            var("GITHUB_REPOSITORY"),
            var("GITHUB_RUN_ID"),
        ) {
            (Some(server), Some(repository), Some(run)) => Some(format!(
                "{}/{repository}/actions/runs/{run}",
                server.trim_end_matches('/')
            )),
            _ => None,
        };
        found = vec![
            ("ci.provider", Some("github-actions".to_owned())),
            ("ci.run_id", var("GITHUB_RUN_ID")),
            ("ci.commit", var("GITHUB_SHA")),
            ("ci.run_url", run_url),
        ];
    } else if var("GITLAB_CI").is_some() || var("CI_PIPELINE_ID").is_some() {
        found = vec![
            ("ci.provider", Some("gitlab-ci".to_owned())),
            ("ci.run_id", var("CI_PIPELINE_ID")),
            ("ci.commit", var("CI_COMMIT_SHA")),
            ("ci.run_url", var("CI_PIPELINE_URL")),
        ];
    } else if var("TF_BUILD").is_some() || var("BUILD_BUILDID").is_some() {
        let run_url = match (
            var("SYSTEM_COLLECTIONURI").or_else(|| var("SYSTEM_TEAMFOUNDATIONCOLLECTIONURI")),
            var("SYSTEM_TEAMPROJECT"),
            var("BUILD_BUILDID"),
        ) {
            (Some(collection), Some(project), Some(build)) => Some(format!(
                "{}/{project}/_build/results?buildId={build}",
                collection.trim_end_matches('/')
            )),
            _ => None,
        };
        found = vec![
            ("ci.provider", Some("azure-pipelines".to_owned())),
            ("ci.run_id", var("BUILD_BUILDID")),
            ("ci.commit", var("BUILD_SOURCEVERSION")),
            ("ci.run_url", run_url),
        ];
    } else if var("JENKINS_URL").is_some() || var("BUILD_URL").is_some() {
        found = vec![
            ("ci.provider", Some("jenkins".to_owned())),
            ("ci.run_id", var("BUILD_NUMBER")),
            ("ci.commit", var("GIT_COMMIT")),
            ("ci.run_url", var("BUILD_URL")),
        ];
    }
    found
        .into_iter()
        .filter_map(|(key, value)| {
            let value: String = value?.chars().take(MAX_ATTRIBUTE_VALUE_CHARS).collect();
            Some((key.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn detect(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ci_metadata(|name| vars.get(name).cloned())
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn github_actions_gives_run_commit_and_run_url() {
        let found = detect(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_SHA", "abc123"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/shop"),
        ]);
        assert_eq!(
            found,
            map(&[
                ("ci.provider", "github-actions"),
                ("ci.run_id", "42"),
                ("ci.commit", "abc123"),
                ("ci.run_url", "https://github.com/acme/shop/actions/runs/42"),
            ])
        );
    }

    #[test]
    fn gitlab_jenkins_and_azure_are_recognised() {
        assert_eq!(
            detect(&[
                ("GITLAB_CI", "true"),
                ("CI_PIPELINE_ID", "7"),
                ("CI_COMMIT_SHA", "def"),
                ("CI_PIPELINE_URL", "https://gitlab.example/p/-/pipelines/7"),
            ]),
            map(&[
                ("ci.provider", "gitlab-ci"),
                ("ci.run_id", "7"),
                ("ci.commit", "def"),
                ("ci.run_url", "https://gitlab.example/p/-/pipelines/7"),
            ])
        );
        assert_eq!(
            detect(&[
                ("BUILD_URL", "https://ci.example/job/deploy/9/"),
                ("GIT_COMMIT", "0a1b")
            ]),
            map(&[
                ("ci.provider", "jenkins"),
                ("ci.commit", "0a1b"),
                ("ci.run_url", "https://ci.example/job/deploy/9/"),
            ])
        );
        assert_eq!(
            detect(&[("BUILD_BUILDID", "311"), ("BUILD_SOURCEVERSION", "f00d")]),
            map(&[
                ("ci.provider", "azure-pipelines"),
                ("ci.run_id", "311"),
                ("ci.commit", "f00d"),
            ])
        );
    }

    #[test]
    fn outside_ci_nothing_is_added() {
        assert!(detect(&[("HOME", "/root"), ("CI", "true")]).is_empty());
    }

    #[test]
    fn long_values_are_cut_to_the_servers_limit() {
        let long = "x".repeat(600);
        let found = detect(&[("GITLAB_CI", "true"), ("CI_PIPELINE_URL", &long)]);
        assert_eq!(found["ci.run_url"].chars().count(), 512);
    }
}
