//! The approver's page: what the one-time link in the mail opens. A GET
//! only shows the release and the buttons (mail scanners open every link, and
//! must not decide anything); the form's POST records the decision. Sent with
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store`, so the link's
//! token leaves no trace in another site's logs or in a cache; works without
//! JavaScript. An unknown, used or expired link gets a page saying which, and
//! nothing about any other release.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use deploytime_core::release::{LinkDigest, Refusal, ReleaseState, Verdict};
use deploytime_core::time::format_rfc3339;
use deploytime_core::wire::ReleaseView;
use serde::Deserialize;

use super::frame::{Chrome, private_page};
use crate::db::Database;
use crate::db::queries::{self, Decided};
use crate::gate::Gate;
use crate::http::routes::releases::{client_address, record_decision};

#[derive(Template)]
#[template(path = "approval.html")]
struct ApprovalPage {
    chrome: Chrome,
    release: ReleaseView,
    expires: String,
    approver: String,
    may_approve: bool,
    token: String,
}

#[derive(Template)]
#[template(path = "approval_message.html")]
struct Outcome<'a> {
    chrome: Chrome,
    title: &'a str,
    message: &'a str,
    /// `errors` or `done`.
    class: &'a str,
}

fn outcome(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let class = if status.is_success() {
        "done"
    } else {
        "errors"
    };
    private_page(
        status,
        &Outcome {
            chrome: Chrome::new(String::new(), false),
            title,
            message,
            class,
        },
    )
}

fn unknown_link() -> HttpResponse {
    outcome(
        StatusCode::NOT_FOUND,
        "This link is not known",
        "No approval link has this token. Check that the whole link from the mail was opened; \
         a link that was cut short or changed does not work.",
    )
}

fn refused(refusal: &Refusal) -> HttpResponse {
    let (status, title) = match refusal {
        Refusal::AlreadyAnswered => (StatusCode::CONFLICT, "This link has already been used"),
        Refusal::Expired => (StatusCode::GONE, "This release has expired"),
        Refusal::Closed(_) => (StatusCode::CONFLICT, "This release is already decided"),
        Refusal::SelfApproval => (StatusCode::FORBIDDEN, "You cannot approve your own release"),
    };
    outcome(status, title, &refusal.to_string())
}

fn unavailable() -> HttpResponse {
    outcome(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "The server cannot reach its database right now. Nothing was recorded; open the link again in a minute.",
    )
}

/// The token a page was given, if it can be one at all; otherwise the page
/// that says why not.
fn token_of(raw: Option<&str>) -> Result<String, Box<HttpResponse>> {
    let Some(token) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(Box::new(outcome(
            StatusCode::BAD_REQUEST,
            "This link is incomplete",
            "An approval link ends with ?token= and the token from the mail. Open the whole link from the mail.",
        )));
    };
    if !LinkDigest::looks_like_token(token) {
        return Err(Box::new(unknown_link()));
    }
    Ok(token.to_owned())
}

#[derive(Debug, Deserialize)]
pub(crate) struct LinkQuery {
    token: Option<String>,
}

/// `GET /approval?token=…`: the release and the buttons. Decides nothing.
pub(crate) async fn approval_page(
    query: Result<web::Query<LinkQuery>, actix_web::Error>,
    db: web::Data<Database>,
) -> HttpResponse {
    let token = match token_of(query.ok().and_then(|q| q.into_inner().token).as_deref()) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let digest = LinkDigest::of(&token);
    let found = db
        .read(move |conn| {
            let Some(target) = queries::link_target(conn, &digest)? else {
                return Ok(None);
            };
            let found = queries::find_release(conn, &target.release.request.key)?;
            Ok(Some((target, found)))
        })
        .await;
    let (target, release) = match found {
        Ok(Some((target, Some((_, release, asks))))) => (target, (release, asks)),
        Ok(_) => return unknown_link(),
        Err(_) => return unavailable(),
    };
    let now = Utc::now();
    if target.approver.verdict.is_some() {
        return refused(&Refusal::AlreadyAnswered);
    }
    match target.release.state_at(now) {
        ReleaseState::Pending => {}
        ReleaseState::Expired => return refused(&Refusal::Expired),
        closed => return refused(&Refusal::Closed(closed)),
    }
    let approver = target.approver.approver();
    let may_approve = target.approver.may_approve != 0;
    let view = ReleaseView::new(release.0, release.1, now);
    private_page(
        StatusCode::OK,
        &ApprovalPage {
            chrome: Chrome::new(String::new(), false),
            expires: format_rfc3339(view.expires_at),
            release: view,
            approver: approver.name.map_or(approver.email.clone(), |name| {
                format!("{name} <{}>", approver.email)
            }),
            may_approve,
            token,
        },
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct DecisionForm {
    token: Option<String>,
    decision: Option<String>,
    comment: Option<String>,
}

/// `POST /approval`: the form's decision, recorded once.
pub(crate) async fn approval_decision(
    req: HttpRequest,
    form: Result<web::Form<DecisionForm>, actix_web::Error>,
    db: web::Data<Database>,
    gate: web::Data<Gate>,
) -> HttpResponse {
    let Ok(form) = form.map(web::Form::into_inner) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "This form could not be read",
            "Open the link from the mail again and use its buttons.",
        );
    };
    let token = match token_of(form.token.as_deref()) {
        Ok(token) => token,
        Err(page) => return *page,
    };
    let Some(verdict) = form.decision.as_deref().and_then(Verdict::parse) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "No decision was sent",
            "Use the Approve or Reject button of the page the link opens.",
        );
    };
    let comment = match deploytime_core::release::comment(form.comment.as_deref()) {
        Ok(comment) => comment,
        Err(message) => {
            return outcome(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The comment cannot be kept",
                &message,
            );
        }
    };
    match record_decision(&db, &gate, &token, verdict, comment, client_address(&req)).await {
        Ok(Decided::Recorded { key, state, .. }) => {
            let title = match verdict {
                Verdict::Approve => "Approved",
                Verdict::Reject => "Rejected",
            };
            let message = match state {
                ReleaseState::Pending => format!(
                    "Your decision about {key} is recorded. The release waits for other approvers."
                ),
                state => {
                    format!("Your decision about {key} is recorded. The release is now {state}.")
                }
            };
            outcome(StatusCode::OK, title, &message)
        }
        Ok(Decided::UnknownToken) => unknown_link(),
        Ok(Decided::Refused { refusal, .. }) => refused(&refusal),
        Err(_) => unavailable(),
    }
}

/// Anything under `/approval/`: the token belongs in the query.
pub(crate) async fn misplaced_token() -> HttpResponse {
    outcome(
        StatusCode::NOT_FOUND,
        "This link is not an approval link",
        "Approval links look like /approval?token=… exactly as the mail has them.",
    )
}
