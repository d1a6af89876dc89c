//! `deploytime release request|status`: the release gate from a pipeline.
//!
//! `request` registers a release (repeating it with the same options answers
//! the release's current state), `status` reads one. With `--wait` both wait
//! for the decision by long polls of the release (`?wait=`, a minute each) and
//! exit with the outcome's code (`exit::release_code`). A server that cannot be
//! reached for a while does not end the wait: every poll is retried until the
//! wait is over. A token that may register releases but not read them (the
//! `ingest` role) waits by repeating the registration, which answers the
//! current state too.

use std::time::{Duration, Instant};

use deploytime_core::release::{ReleaseRequest, ReleaseState, Verdict};
use deploytime_core::wire::{AuditEntry, ReleaseBody, ReleaseDetail, ReleaseView, paths};
use serde::Serialize;

use crate::api::{Api, Failure};
use crate::cli::{ReleaseFormat, ReleaseRequestArgs, ReleaseStatusArgs, ReleaseWaitArgs};
use crate::error::Error;
use crate::exit;
use crate::output::{self, human_duration};

/// The longest wait asked of the server in one poll (it holds at most 5m).
const POLL_WAIT: Duration = Duration::from_secs(60);
/// How often the release is registered again when it cannot be read.
const REPOST_INTERVAL: Duration = Duration::from_secs(10);
/// A poll answered sooner than this without a change is a server that does
/// not hold polls: the next one is made after `SLOW_POLL`.
const EARLY_ANSWER: Duration = Duration::from_secs(1);
const SLOW_POLL: Duration = Duration::from_secs(5);

/// A release as last read, with its audit when it was read with a GET.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    #[serde(flatten)]
    pub release: ReleaseView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<Vec<AuditEntry>>,
}

impl From<ReleaseView> for Seen {
    fn from(release: ReleaseView) -> Self {
        Seen {
            release,
            audit: None,
        }
    }
}

impl From<ReleaseDetail> for Seen {
    fn from(detail: ReleaseDetail) -> Self {
        Seen {
            release: detail.release,
            audit: Some(detail.audit),
        }
    }
}

/// The flag each field of a release request comes from, to name it in errors.
fn flag_of(field: &str) -> &str {
    match field {
        "release_id" => "--id",
        "team_project" => "--project",
        "release_name" => "--name",
        "component" => "--component",
        "environment" => "--environment",
        "version" => "--version",
        "requested_by" => "--requested-by",
        "required_approvals" => "--required-approvals",
        "expires_in" => "--expires-in",
        other => other,
    }
}

/// The body of the request, checked by the server's own rule before it is
/// sent: a mistake is a usage error now, not a refusal after the network.
pub fn body_of(args: &ReleaseRequestArgs) -> Result<ReleaseBody, Error> {
    let body = ReleaseBody {
        release_name: args.name.clone(),
        release_id: args.key.id.clone(),
        team_project: args.key.project.clone(),
        component: args.component.clone(),
        environment: args.environment.clone(),
        version: args.version.clone(),
        requested_by: args.requested_by.clone(),
        required_approvals: args.required_approvals,
        expires_in: args.expires_in.clone(),
    };
    let json = serde_json::to_value(&body)
        .map_err(|e| Error::Internal(format!("cannot write the release request: {e}")))?;
    match ReleaseRequest::from_json(&json) {
        Ok(_) => Ok(body),
        Err(errors) => Err(Error::Usage(format!(
            "the release request would be refused:{}",
            errors
                .0
                .iter()
                .map(|e| format!("\n  {}: {}", flag_of(&e.field), e.message))
                .collect::<String>()
        ))),
    }
}

fn failure(api: &Api, failure: Failure) -> Error {
    match failure {
        Failure::Refused(problem) => Error::Rejected(problem),
        Failure::Transient { cause, .. } => Error::Unreachable {
            url: api.base().to_owned(),
            cause,
        },
    }
}

/// `deploytime release request`.
pub fn request(api: &Api, args: ReleaseRequestArgs) -> Result<u8, Error> {
    let body = body_of(&args)?;
    let view: ReleaseView = api
        .post_json(paths::RELEASES, &body, api.retry_for())
        .map_err(|f| match f {
            Failure::Refused(problem) if matches!(problem.status, 404 | 405) => {
                Error::Unsupported {
                    url: api.base().to_owned(),
                    what: "the release gate".into(),
                    status: problem.status,
                }
            }
            other => failure(api, other),
        })?;
    eprintln!("deploytime: {}", progress(&view));
    finish(api, view.into(), &args.wait, Some(&body))
}

/// `deploytime release status`.
pub fn status(api: &Api, args: ReleaseStatusArgs) -> Result<u8, Error> {
    let path = paths::release(&args.key.project, &args.key.id);
    let detail: ReleaseDetail = api.get_json(&path, &[]).map_err(|f| failure(api, f))?;
    eprintln!("deploytime: {}", progress(&detail.release));
    finish(api, detail.into(), &args.wait, None)
}

/// Waits when asked to, prints the release and says what to exit with.
fn finish(
    api: &Api,
    seen: Seen,
    args: &ReleaseWaitArgs,
    body: Option<&ReleaseBody>,
) -> Result<u8, Error> {
    let Some(wait) = args.wait else {
        print(&seen, args.output)?;
        return Ok(exit::OK);
    };
    let seen = wait_for_decision(api, seen, wait, body)?;
    let state = seen.release.state;
    eprintln!("deploytime: {}", outcome(&seen.release, wait));
    print(&seen, args.output)?;
    Ok(exit::release_code(state))
}

fn print(seen: &Seen, format: ReleaseFormat) -> Result<(), Error> {
    match format {
        ReleaseFormat::Json => output::print_json(seen),
        ReleaseFormat::Table => output::print_release(&seen.release),
    }
}

/// Reads the release until it is decided or `wait` has passed. Transient
/// failures are retried until then (and a last read for `--retry-for` after);
/// a token refused reading it waits by registering it again (`body`).
fn wait_for_decision(
    api: &Api,
    mut seen: Seen,
    wait: Duration,
    body: Option<&ReleaseBody>,
) -> Result<Seen, Error> {
    let started = Instant::now();
    let deadline = started + wait;
    let path = paths::release(&seen.release.team_project, &seen.release.release_id);
    // Set once a GET is refused: the release is registered again instead.
    let mut repost: Option<&ReleaseBody> = None;
    if !seen.release.state.is_final() && !wait.is_zero() {
        eprintln!(
            "deploytime: waiting up to {} for release {} to be decided",
            humantime::format_duration(wait),
            key_of(&seen.release)
        );
    }
    loop {
        if seen.release.state.is_final() || Instant::now() >= deadline {
            return Ok(seen);
        }
        let left = || deadline.saturating_duration_since(Instant::now());
        // Until the wait is over (in whole seconds, as the warning shows it),
        // and one read's worth after it.
        let budget = Duration::from_secs(left().as_secs_f64().ceil() as u64).max(api.retry_for());
        let asked = Instant::now();
        let read = if let Some(body) = repost {
            std::thread::sleep(REPOST_INTERVAL.min(left()));
            api.post_json::<_, ReleaseView>(paths::RELEASES, body, budget)
                .map(Seen::from)
        } else {
            api.get_json_waiting::<ReleaseDetail>(&path, || left().min(POLL_WAIT), budget)
                .map(Seen::from)
        };
        let next = match read {
            Ok(next) => next,
            Err(Failure::Refused(problem))
                if problem.status == 403 && repost.is_none() && body.is_some() =>
            {
                eprintln!(
                    "deploytime: this token may not read releases ({}); waiting by registering the release again every {}",
                    problem.detail,
                    humantime::format_duration(REPOST_INTERVAL)
                );
                repost = body;
                continue;
            }
            Err(Failure::Transient { cause, .. }) => {
                return Err(Error::Unreachable {
                    url: api.base().to_owned(),
                    cause: format!(
                        "{cause}; release {} was last seen {}",
                        key_of(&seen.release),
                        seen.release.state
                    ),
                });
            }
            Err(refused) => return Err(failure(api, refused)),
        };
        if changed(&seen.release, &next.release) {
            eprintln!("deploytime: {}", progress(&next.release));
        } else if repost.is_none()
            && !next.release.state.is_final()
            && asked.elapsed() < EARLY_ANSWER
            && left() >= EARLY_ANSWER
        {
            // A server that answers at once: do not ask it in a tight loop.
            std::thread::sleep(SLOW_POLL.min(left()));
        }
        seen = next;
    }
}

fn key_of(view: &ReleaseView) -> String {
    format!("{}/{}", view.team_project, view.release_id)
}

/// Whether anything a person waiting would want to hear about has changed.
fn changed(before: &ReleaseView, after: &ReleaseView) -> bool {
    before.state != after.state
        || before.approvals != after.approvals
        || before.rejections != after.rejections
        || before.approvers.len() != after.approvers.len()
        || before.reason != after.reason
}

/// The approvers who gave `verdict`, by address.
fn deciders(view: &ReleaseView, verdict: Verdict) -> Vec<String> {
    view.approvers
        .iter()
        .filter(|a| a.decision == Some(verdict))
        .map(|a| a.email.clone())
        .collect()
}

/// `release Devx/386 (Desafio-CD): pending, 1 of 2 approvals; asked a@x, b@x`.
pub fn progress(view: &ReleaseView) -> String {
    let mut text = format!(
        "release {} ({}): {}",
        key_of(view),
        view.release_name,
        view.state
    );
    if view.state == ReleaseState::Pending {
        text.push_str(", ");
        text.push_str(&standing(view));
    } else if let Some(reason) = &view.reason {
        text.push_str(&format!(" ({})", output::one_line(reason)));
    }
    text
}

/// Where a pending release stands: `1 of 2 approvals; asked a@x, b@x`, and
/// why it still waits, when the server says.
fn standing(view: &ReleaseView) -> String {
    let mut text = match view.required_approvals {
        Some(needed) => format!("{} of {needed} approvals", view.approvals),
        None => "looking for approvers".to_owned(),
    };
    if !view.approvers.is_empty() {
        let asked: Vec<&str> = view.approvers.iter().map(|a| a.email.as_str()).collect();
        text.push_str(&format!("; asked {}", asked.join(", ")));
    }
    if let Some(reason) = &view.reason {
        text.push_str(&format!(" ({})", output::one_line(reason)));
    }
    text
}

/// What the wait came to, in one line.
pub fn outcome(view: &ReleaseView, wait: Duration) -> String {
    let key = key_of(view);
    let waited = human_duration(view.waited_seconds);
    match view.state {
        ReleaseState::Approved => format!(
            "release {key} approved by {} after {waited}",
            deciders(view, Verdict::Approve).join(", ")
        ),
        ReleaseState::Rejected => {
            let mut text = format!(
                "release {key} rejected by {} after {waited}",
                deciders(view, Verdict::Reject).join(", ")
            );
            for approver in view
                .approvers
                .iter()
                .filter(|a| a.decision == Some(Verdict::Reject))
            {
                if let Some(comment) = &approver.comment {
                    text.push_str(&format!(
                        "\n  {}: {}",
                        approver.email,
                        output::one_line(comment)
                    ));
                }
            }
            text
        }
        ReleaseState::Expired => format!(
            "release {key} expired after {waited} with {} of {} approvals",
            view.approvals,
            view.required_approvals
                .map_or_else(|| "?".to_owned(), |n| n.to_string())
        ),
        ReleaseState::Failed => format!(
            "release {key} failed: {}",
            output::one_line(view.reason.as_deref().unwrap_or("no reason given"))
        ),
        ReleaseState::Pending => format!(
            "release {key} is still pending after waiting {}: {}",
            humantime::format_duration(wait),
            standing(view)
        ),
    }
}
