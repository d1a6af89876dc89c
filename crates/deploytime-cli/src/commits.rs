//! The commits a deployment ships, collected from git by `start` and `run`
//! when they run inside a checkout: the commits since the one the server says
//! the component's latest successful deployment deployed (or since
//! `--commits-since REF`). They give the lead time for changes. Collecting
//! never fails a deploy: whatever goes wrong is a warning and no commits.
//!
//! The `git` command is used as the pipeline has it: a CI checkout is already
//! configured for it (safe directories, credentials, shallow clones).

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deploytime_core::commits::{Commit, MAX_COMMITS};
use deploytime_core::wire::{DeployedCommit, paths};

use crate::api::Api;
use crate::cli::EventArgs;

/// How long asking the server for the commit deployed last may take before
/// the deploy goes on without it.
const ASK_BUDGET: Duration = Duration::from_secs(5);

/// The commits to send with a start, the deployed one (HEAD) first.
pub fn collect(api: &Api, args: &EventArgs) -> Vec<Commit> {
    if args.no_commits {
        return Vec::new();
    }
    match try_collect(api, args) {
        Ok(commits) => commits,
        Err(why) => {
            eprintln!("deploytime: warning: no commits recorded: {why}");
            Vec::new()
        }
    }
}

fn try_collect(api: &Api, args: &EventArgs) -> Result<Vec<Commit>, String> {
    if git(&["rev-parse", "--is-inside-work-tree"]).is_err() {
        if let Some(since) = &args.commits_since {
            return Err(format!(
                "--commits-since {since} was given, but this is not a git checkout"
            ));
        }
        return Ok(Vec::new());
    }
    let base = match &args.commits_since {
        Some(reference) => {
            if !is_commit(reference) {
                return Err(format!("--commits-since {reference}: no such commit here"));
            }
            Some(reference.clone())
        }
        None => deployed_last(api, args).and_then(|sha| {
            if is_commit(&sha) {
                Some(sha)
            } else {
                eprintln!(
                    "deploytime: commit {sha} (deployed last) is not in this checkout (a shallow clone?); recording HEAD only"
                );
                None
            }
        }),
    };
    let range = match &base {
        Some(base) => vec![format!("{base}..HEAD")],
        // The first deployment of a component, or no way to tell what it
        // shipped before: its own commit only, not the whole history.
        None => vec!["-1".to_owned(), "HEAD".to_owned()],
    };
    let limit = format!("--max-count={}", MAX_COMMITS + 1);
    let mut command = vec!["log", "--format=%H %cI", limit.as_str()];
    command.extend(range.iter().map(String::as_str));
    let listed = git(&command)?;
    let mut commits = listed
        .lines()
        .map(parse_line)
        .collect::<Result<Vec<_>, _>>()?;
    if commits.len() > MAX_COMMITS {
        commits.truncate(MAX_COMMITS);
        eprintln!(
            "deploytime: more than {MAX_COMMITS} commits since the last deployment; recording the newest {MAX_COMMITS}"
        );
    }
    Ok(commits)
}

/// The commit the latest successful deployment of this component in this
/// environment deployed, if the server knows one.
fn deployed_last(api: &Api, args: &EventArgs) -> Option<String> {
    let query = [
        ("component", args.component.clone()),
        ("environment", args.environment.clone()),
    ];
    api.get_json_within::<DeployedCommit>(paths::DEPLOYED_COMMIT, &query, ASK_BUDGET)
        .ok()
        .map(|deployed| deployed.commit.sha)
}

fn is_commit(reference: &str) -> bool {
    // `--end-of-options`: a reference is never read as an option.
    git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &format!("{reference}^{{commit}}"),
    ])
    .is_ok()
}

/// One line of `git log --format='%H %cI'`.
fn parse_line(line: &str) -> Result<Commit, String> {
    let unreadable = || format!("git log printed an unreadable line: {line:?}");
    let (sha, at) = line.split_once(' ').ok_or_else(unreadable)?;
    let committed_at = DateTime::parse_from_rfc3339(at.trim()).map_err(|_| unreadable())?;
    Ok(Commit {
        sha: sha.to_ascii_lowercase(),
        committed_at: committed_at.with_timezone(&Utc),
    })
}

/// Runs git with `args`; its standard output, or why it failed.
fn git(args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        String::from_utf8(output.stdout)
            .map_err(|_| "git printed something that is not UTF-8".into())
    } else {
        Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_is_a_commit() {
        let commit =
            parse_line("9FCEB02D0AE598E95DC970B74767F19372D61AF8 2026-11-30T10:00:00+02:00")
                .unwrap();
        assert_eq!(commit.sha, "9fceb02d0ae598e95dc970b74767f19372d61af8");
        assert_eq!(
            commit.committed_at.to_rfc3339(),
            "2026-11-30T08:00:00+00:00"
        );
        assert!(parse_line("garbage").is_err());
        assert!(parse_line("abc yesterday").is_err());
    }
}
