//! The hook endpoints: GitHub's and GitLab's webhooks and CloudEvents (CDEvents).
//! Each checks its sender, reads the body (at most 1 MiB), lets
//! `deploytime_core::hooks` map the delivery to store-call bodies, and stores
//! those through the store call's own path (`events::record`): one validation,
//! one pairing, one idempotency. A delivery that has nothing new to record is
//! answered 2xx, so that a provider never retries it.

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use deploytime_core::EventInput;
use deploytime_core::access::{Caller, Credential};
use deploytime_core::hooks::{self, Mapped, already_recorded};
use deploytime_core::wire::{HookEventReceipt, HookReceipt, HookResult, Problem};
use serde_json::Value;

use super::body::read_body_up_to;
use super::cloudevents;
use super::events::record;
use crate::db::{Database, StoreError};
use crate::http::HttpSettings;
use crate::http::error::{AccessProblems, ApiError};
use crate::http::guard::Authenticated;
use crate::http::metrics::{HookOutcome, HookSource, Metrics};

/// Hook bodies larger than this are refused with 413 (GitHub caps its own
/// payloads at 25 MB, but a deployment event is a few KiB).
pub(crate) const MAX_HOOK_BODY_BYTES: usize = 1024 * 1024;

/// A GitHub delivery: `deployment` and `deployment_status` events.
#[utoipa::path(
    post,
    path = "/api/v1/hooks/github",
    tag = "hooks",
    request_body(
        description = "GitHub's webhook payload (content type application/json, or a form with a `payload` field), at most 1 MiB",
        content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))
    ),
    params(
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the HMAC-SHA256 of the body with the webhook's secret"),
        ("X-GitHub-Event" = String, Header, description = "`deployment`, `deployment_status` or `ping`; others are ignored"),
        ("X-GitHub-Delivery" = String, Header, description = "The delivery's GUID, kept by a redelivery: the event's idempotency key"),
    ),
    responses(
        (status = 201, description = "Recorded", body = HookReceipt),
        (status = 200, description = "Nothing new: a redelivery, a second start or finish of a deployment already recorded, or `ping`", body = HookReceipt),
        (status = 202, description = "Not recorded: another event, or a state that is neither a start nor a finish (`inactive`)", body = HookReceipt),
        (status = 400, description = "A header is missing, or the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No signature, or one that matches no configured secret; nothing is stored", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No GitHub webhook secret is configured", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The deployment belongs to another component or environment", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON nor a form", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The payload lacks what a deployment event has, or its names break a rule of the store call", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; GitHub may redeliver", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[tracing::instrument(name = "github_hook", skip_all)]
pub(crate) async fn github(
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    match github_delivery(&req, payload, &db, &settings, &metrics).await {
        // GitHub's ping, sent when the webhook is created: 200, as GitHub
        // expects, once the signature shows that the secret matches.
        Ok(None) => {
            metrics.hook_delivery(HookSource::Github, HookOutcome::Ignored);
            Ok(HttpResponse::Ok().json(ignored(
                "pong: the webhook reaches deploytime and its secret matches".into(),
            )))
        }
        Ok(Some(receipt)) => answer(Ok(receipt), HookSource::Github, &metrics),
        Err(refused) => answer(Err(refused), HookSource::Github, &metrics),
    }
}

async fn github_delivery(
    req: &HttpRequest,
    payload: web::Payload,
    db: &Database,
    settings: &HttpSettings,
    metrics: &Metrics,
) -> Result<Option<HookReceipt>, ApiError> {
    if !settings.hooks.github_enabled() {
        return Err(ApiError::NotFound(
            "the GitHub webhook is off: start the server with --github-webhook-secret \
             (DEPLOYTIME_GITHUB_WEBHOOK_SECRET)"
                .into(),
        ));
    }
    let body = read_body_up_to(req, payload, MAX_HOOK_BODY_BYTES).await?;
    settings.hooks.verify_github(
        req.headers()
            .get("X-Hub-Signature-256")
            .map(|v| v.as_bytes()),
        &body,
    )?;
    let event = header_text(req.headers(), "X-GitHub-Event")?;
    let delivery = header_text(req.headers(), "X-GitHub-Delivery")?;
    if event == "ping" {
        return Ok(None);
    }
    let payload = json_payload(req.headers(), &body)?;
    let mapped = hooks::github::map(
        hooks::github::Delivery {
            event,
            id: delivery,
        },
        &payload,
    )
    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    store_all(mapped, &webhook("github"), db, metrics)
        .await
        .map(Some)
}

/// A GitLab delivery: deployment events.
#[utoipa::path(
    post,
    path = "/api/v1/hooks/gitlab",
    tag = "hooks",
    request_body(
        description = "GitLab's webhook payload, at most 1 MiB",
        content((Object = "application/json"))
    ),
    params(
        ("X-Gitlab-Token" = String, Header, description = "The webhook's secret token"),
        ("X-Gitlab-Event" = String, Header, description = "`Deployment Hook`; others are ignored"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "Kept by GitLab across retries of a delivery: the event's idempotency key (else `X-Gitlab-Event-UUID`, else the body's digest)"),
    ),
    responses(
        (status = 201, description = "Recorded", body = HookReceipt),
        (status = 200, description = "Nothing new: a redelivery, or a second start or finish of a deployment already recorded", body = HookReceipt),
        (status = 202, description = "Not recorded: another event, or a status that is neither a start nor a finish", body = HookReceipt),
        (status = 400, description = "A header is missing, or the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that matches no configured secret; nothing is stored", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No GitLab webhook token is configured", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The deployment belongs to another component or environment", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The payload lacks what a deployment event has, or its names break a rule of the store call", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; GitLab may retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
#[tracing::instrument(name = "gitlab_hook", skip_all)]
pub(crate) async fn gitlab(
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let delivered = gitlab_delivery(&req, payload, &db, &settings, &metrics).await;
    answer(delivered, HookSource::Gitlab, &metrics)
}

async fn gitlab_delivery(
    req: &HttpRequest,
    payload: web::Payload,
    db: &Database,
    settings: &HttpSettings,
    metrics: &Metrics,
) -> Result<HookReceipt, ApiError> {
    if !settings.hooks.gitlab_enabled() {
        return Err(ApiError::NotFound(
            "the GitLab webhook is off: start the server with --gitlab-webhook-token \
             (DEPLOYTIME_GITLAB_WEBHOOK_TOKEN)"
                .into(),
        ));
    }
    // The token is in a header: a caller without it is refused before its
    // body is read.
    settings
        .hooks
        .verify_gitlab(req.headers().get("X-Gitlab-Token").map(|v| v.as_bytes()))?;
    let body = read_body_up_to(req, payload, MAX_HOOK_BODY_BYTES).await?;
    let event = header_text(req.headers(), "X-Gitlab-Event")?;
    let delivery = optional_header_text(req.headers(), "Idempotency-Key")?
        .or(optional_header_text(req.headers(), "X-Gitlab-Event-UUID")?);
    let event_id = hooks::gitlab::event_id(delivery, &body);
    let payload = json_payload(req.headers(), &body)?;
    let mapped = hooks::gitlab::map(event, event_id, &payload)
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    store_all(mapped, &webhook("gitlab"), db, metrics).await
}

/// CDEvents, as CloudEvents in binary, structured or batch mode.
#[utoipa::path(
    post,
    path = "/api/v1/cdevents",
    tag = "hooks",
    request_body(
        description = "A CloudEvent whose data is a CDEvent: in structured mode (application/cloudevents+json), \
                       a batch of them (application/cloudevents-batch+json, at most 100), or in binary mode \
                       (the CDEvent as application/json, its attributes in ce-* headers); at most 1 MiB",
        content(
            (Object = "application/cloudevents+json"),
            (Vec<Object> = "application/cloudevents-batch+json"),
            (Object = "application/json")
        )
    ),
    params(
        ("ce-specversion" = Option<String>, Header, nullable = false, description = "Binary mode: 1.0"),
        ("ce-id" = Option<String>, Header, nullable = false, description = "Binary mode: the event's id; (source, id) is its idempotency key"),
        ("ce-source" = Option<String>, Header, nullable = false, description = "Binary mode: the event's source"),
        ("ce-type" = Option<String>, Header, nullable = false, description = "Binary mode: dev.cdevents.pipelinerun.started.0.2.0 and the like"),
        ("ce-time" = Option<String>, Header, nullable = false, description = "Binary mode: when it happened, if the CDEvent has no context.timestamp"),
    ),
    responses(
        (status = 201, description = "At least one event recorded", body = HookReceipt),
        (status = 200, description = "Nothing new: every event was recorded before", body = HookReceipt),
        (status = 202, description = "Nothing recorded: types deploytime does not track are ignored (and counted in deploytime_hook_deliveries_total)", body = HookReceipt),
        (status = 400, description = "Not JSON, or a CloudEvent without specversion 1.0, id, source or type", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The deployment belongs to another component or environment", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not a CloudEvent in any of the three modes", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A recorded type without what it needs (a finished run without outcome, no timestamp), a batch of over 100 events, or names that break a rule of the store call; nothing of the request is stored", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(name = "cdevents", skip_all)]
pub(crate) async fn cdevents(
    req: HttpRequest,
    payload: web::Payload,
    who: Authenticated,
    db: web::Data<Database>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let delivered = cdevents_delivery(&req, payload, &who, &db, &metrics).await;
    answer(delivered, HookSource::Cdevents, &metrics)
}

async fn cdevents_delivery(
    req: &HttpRequest,
    payload: web::Payload,
    who: &Authenticated,
    db: &Database,
    metrics: &Metrics,
) -> Result<HookReceipt, ApiError> {
    let body = read_body_up_to(req, payload, MAX_HOOK_BODY_BYTES).await?;
    let received = cloudevents::read(req.headers(), &body)?;
    // Every event is mapped before any is stored: a batch the mapping
    // refuses stores nothing.
    let mut mapped = Vec::with_capacity(received.len());
    for (i, event) in received.iter().enumerate() {
        let cloud_event = hooks::cdevents::CloudEvent {
            id: &event.id,
            source: &event.source,
            kind: &event.kind,
            time: event.time.as_deref(),
            data: &event.data,
        };
        mapped.push(hooks::cdevents::map(&cloud_event).map_err(|e| {
            ApiError::Unprocessable(if received.len() == 1 {
                e.to_string()
            } else {
                format!("event {i} of the batch: {e}")
            })
        })?);
    }
    let mut events = Vec::with_capacity(mapped.len());
    for delivery in mapped {
        match delivery {
            Mapped::Ignored(reason) => events.push(ignored_event(reason)),
            Mapped::Events(bodies) => {
                for body in bodies {
                    events.push(store_one(body, who, db, metrics).await?);
                }
            }
        }
    }
    if events.is_empty() {
        return Ok(ignored("the batch is empty".into()));
    }
    Ok(HookReceipt {
        result: overall(&events),
        events,
    })
}

/// A verified webhook of `provider`: it may record events, nothing else.
fn webhook(provider: &'static str) -> Authenticated {
    Authenticated {
        caller: Caller::webhook(provider),
        credential: Credential::Webhook(provider),
    }
}

fn ignored_event(detail: String) -> HookEventReceipt {
    HookEventReceipt {
        result: HookResult::Ignored,
        detail: Some(detail),
        event_id: None,
        deployment_id: None,
    }
}

fn ignored(detail: String) -> HookReceipt {
    HookReceipt {
        result: HookResult::Ignored,
        events: vec![ignored_event(detail)],
    }
}

/// Stores each mapped event through the store call's path. A refusal that
/// only says the event was recorded before is a replay, not an error.
pub(super) async fn store_all(
    mapped: Mapped,
    who: &Authenticated,
    db: &Database,
    metrics: &Metrics,
) -> Result<HookReceipt, ApiError> {
    let bodies = match mapped {
        Mapped::Ignored(reason) => return Ok(ignored(reason)),
        Mapped::Events(bodies) => bodies,
    };
    let mut events = Vec::with_capacity(bodies.len());
    for body in bodies {
        events.push(store_one(body, who, db, metrics).await?);
    }
    Ok(HookReceipt {
        result: overall(&events),
        events,
    })
}

pub(super) async fn store_one(
    body: Value,
    who: &Authenticated,
    db: &Database,
    metrics: &Metrics,
) -> Result<HookEventReceipt, ApiError> {
    let input = EventInput::from_json(body)?;
    Ok(match record(input, who, db, metrics).await? {
        Ok(stored) => HookEventReceipt {
            result: if stored.replayed {
                HookResult::Replayed
            } else {
                HookResult::Stored
            },
            detail: stored
                .replayed
                .then(|| "this delivery was recorded before".to_owned()),
            event_id: Some(stored.event.id),
            deployment_id: Some(stored.deployment.id),
        },
        Err(StoreError::Pairing(refusal)) if already_recorded(&refusal) => HookEventReceipt {
            result: HookResult::Replayed,
            detail: Some(format!("nothing new recorded: {refusal}")),
            event_id: None,
            deployment_id: None,
        },
        Err(refused) => return Err(refused.into()),
    })
}

/// `stored` if anything was recorded now, else `replayed` if anything was
/// recorded before, else `ignored`.
pub(super) fn overall(events: &[HookEventReceipt]) -> HookResult {
    let has = |r| events.iter().any(|e| e.result == r);
    if has(HookResult::Stored) {
        HookResult::Stored
    } else if has(HookResult::Replayed) {
        HookResult::Replayed
    } else {
        HookResult::Ignored
    }
}

/// The response to a delivery, counted in the metrics: 201 when something was
/// recorded, 200 when all of it was recorded before, 202 when none of it is
/// recorded at all.
pub(super) fn answer(
    delivered: Result<HookReceipt, ApiError>,
    source: HookSource,
    metrics: &Metrics,
) -> Result<HttpResponse, ApiError> {
    let receipt = match delivered {
        Ok(receipt) => receipt,
        Err(refused) => {
            metrics.hook_delivery(source, HookOutcome::Rejected);
            return Err(refused);
        }
    };
    for event in &receipt.events {
        metrics.hook_delivery(
            source,
            match event.result {
                HookResult::Stored => HookOutcome::Stored,
                HookResult::Replayed => HookOutcome::Replayed,
                HookResult::Ignored => HookOutcome::Ignored,
            },
        );
    }
    let mut response = match receipt.result {
        HookResult::Stored => HttpResponse::Created(),
        HookResult::Replayed => HttpResponse::Ok(),
        HookResult::Ignored => HttpResponse::Accepted(),
    };
    Ok(response.json(receipt))
}

fn optional_header_text<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map(str::trim).map_err(|_| {
                ApiError::BadRequest(format!("the {name} header is not readable text"))
            })
        })
        .transpose()
        .map(|v| v.filter(|v| !v.is_empty()))
}

pub(super) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    optional_header_text(headers, name)?
        .ok_or_else(|| ApiError::BadRequest(format!("the {name} header is missing")))
}

/// The delivery's JSON: the body itself, or (GitHub's form content type) its
/// `payload` field.
fn json_payload(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let json: std::borrow::Cow<'_, [u8]> = match essence.as_deref() {
        None | Some("application/json") => body.into(),
        Some("application/x-www-form-urlencoded") => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
                ApiError::MalformedBody(format!("the body is not a valid form: {e}"))
            })?;
            let payload = pairs
                .into_iter()
                .find(|(name, _)| name == "payload")
                .map(|(_, value)| value)
                .ok_or_else(|| ApiError::MalformedBody("the form has no `payload` field".into()))?;
            payload.into_bytes().into()
        }
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send application/json (got {other})"
            )));
        }
    };
    let value: Value = serde_json::from_slice(&json)
        .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::MalformedBody(
            "the body must be a JSON object".into(),
        ));
    }
    Ok(value)
}
