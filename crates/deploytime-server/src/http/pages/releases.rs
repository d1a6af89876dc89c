//! The releases page: what waits for approval and on whom, and the latest
//! decisions, read through the same queries and views as the API.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use deploytime_core::release::ReleaseState;
use deploytime_core::time::to_micros;
use deploytime_core::wire::ReleaseView;

use super::frame::{Chrome, page};
use super::session;
use super::views::{age, duration, failed};
use crate::db::Database;
use crate::db::queries::{self, ReleaseFilter};
use crate::http::error::ApiError;

/// Rows of each table at most.
const SHOWN: i64 = 50;

/// One release waiting for approval.
pub(crate) struct Waiting {
    pub name: String,
    pub key: String,
    pub requested: String,
    pub expires: String,
    pub approvals: String,
    /// Who has not answered yet (or why nobody was asked yet).
    pub waiting_on: String,
}

/// One decided release.
pub(crate) struct Decided {
    pub name: String,
    pub key: String,
    pub state: ReleaseState,
    pub when: String,
    pub decisions: String,
    pub waited: String,
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage {
    chrome: Chrome,
    waiting: Vec<Waiting>,
    decided: Vec<Decided>,
}

fn key(view: &ReleaseView) -> String {
    format!("{}/{}", view.team_project, view.release_id)
}

fn micros(at: DateTime<Utc>) -> i64 {
    to_micros(at)
}

pub(crate) fn waiting(view: &ReleaseView, now: DateTime<Utc>) -> Waiting {
    let unanswered: Vec<&str> = view
        .approvers
        .iter()
        .filter(|a| a.decision.is_none())
        .map(|a| a.email.as_str())
        .collect();
    let waiting_on = if view.approvers.is_empty() {
        view.reason
            .clone()
            .unwrap_or_else(|| "finding the approvers".to_owned())
    } else {
        unanswered.join(", ")
    };
    let expires_in = (view.expires_at - now).num_seconds().max(0) as f64;
    Waiting {
        name: view.release_name.clone(),
        key: key(view),
        requested: age(now, micros(view.created_at)),
        expires: format!("in {}", duration(Some(expires_in))),
        approvals: match view.required_approvals {
            Some(needed) => format!("{} of {needed}", view.approvals),
            None => "-".to_owned(),
        },
        waiting_on,
    }
}

pub(crate) fn decided(view: &ReleaseView, now: DateTime<Utc>) -> Decided {
    let decisions: Vec<String> = view
        .approvers
        .iter()
        .filter_map(|a| a.decision.map(|d| format!("{} ({d})", a.email)))
        .collect();
    Decided {
        name: view.release_name.clone(),
        key: key(view),
        state: view.state,
        when: view
            .decided_at
            .map(|at| age(now, micros(at)))
            .unwrap_or_default(),
        decisions: if decisions.is_empty() {
            view.reason.clone().unwrap_or_else(|| "-".to_owned())
        } else {
            decisions.join(", ")
        },
        waited: duration(Some(view.waited_seconds)),
    }
}

#[tracing::instrument(skip_all)]
pub(crate) async fn releases(req: HttpRequest, db: web::Data<Database>) -> HttpResponse {
    let caller = match session::admit(&req).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let now = Utc::now();
    let read = db
        .read(move |conn| {
            let pending = ReleaseFilter {
                state: Some((ReleaseState::Pending, to_micros(now))),
                ..ReleaseFilter::default()
            };
            let waiting = queries::list_releases(conn, &pending, None, SHOWN)?;
            // The newest releases, of which the decided ones are shown.
            let recent = queries::list_releases(conn, &ReleaseFilter::default(), None, SHOWN * 4)?;
            Ok((waiting, recent))
        })
        .await;
    let (pending, recent) = match read {
        Ok(read) => read,
        Err(e) => return failed(&ApiError::from(e)),
    };
    let view = |listed: queries::Listed<queries::AskedRelease>| {
        let (release, asks) = listed.item;
        ReleaseView::new(release, asks, now)
    };
    let waiting = pending
        .into_iter()
        .map(view)
        .map(|v| waiting(&v, now))
        .collect();
    let decided = recent
        .into_iter()
        .map(view)
        .filter(|v| v.state.is_final())
        .take(usize::try_from(SHOWN).unwrap_or(50))
        .map(|v| decided(&v, now))
        .collect();
    page(
        StatusCode::OK,
        &ReleasesPage {
            chrome: Chrome::new(String::new(), caller.signed_in),
            waiting,
            decided,
        },
    )
}
