//! The worker: takes the outbox's due items (approvers to fetch, mails and
//! reminders to send) and records expiry, until the server stops.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use deploytime_core::release::{LinkDigest, ReleaseState};
use tokio::sync::watch;

use super::Gate;
use super::mailer::{MailSettingsError, Mailer};
use super::source::{self, Answer};
use crate::db::queries::{self, OutboxItem, Work};
use crate::db::{Database, DbError};

/// Items taken per turn; each is worked on concurrently with the others.
const BATCH: i64 = 16;
/// How long a claimed item is this server's before another may take it over.
const LEASE: Duration = Duration::from_secs(120);
/// The longest the worker sleeps without looking: other servers on the same
/// database queue work this one is not woken for.
const IDLE: Duration = Duration::from_secs(2);

/// The gate's worker, started with the server.
pub struct Worker {
    gate: Gate,
    db: Database,
    client: reqwest::Client,
    mailer: Option<Mailer>,
}

impl Worker {
    /// Checks the mail settings (a mistake there stops the start-up).
    pub fn new(gate: Gate, db: Database) -> Result<Self, MailSettingsError> {
        let settings = gate.settings();
        let mailer = settings
            .smtp_url
            .as_ref()
            .map(|url| {
                Mailer::new(
                    url.expose(),
                    &settings.mail_from,
                    settings.dependency_timeout,
                )
            })
            .transpose()?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("deploytime/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MailSettingsError::SmtpUrl(format!("cannot build an HTTP client: {e}")))?;
        Ok(Worker {
            gate,
            db,
            client,
            mailer,
        })
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let worker = std::sync::Arc::new(self);
        loop {
            if *stop.borrow() {
                return;
            }
            let pause = worker.turn().await;
            tokio::select! {
                _ = stop.changed() => {}
                () = worker.gate.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One turn: expiry, then the due items. Returns how long to wait before
    /// the next turn.
    async fn turn(self: &std::sync::Arc<Self>) -> Duration {
        let now = Utc::now();
        match self
            .db
            .background_write(move |conn| queries::expire_due(conn, now))
            .await
        {
            Ok(0) => {}
            Ok(_) => self.gate.changed(),
            Err(e) => return self.unavailable(&e),
        }
        let items = match self
            .db
            .background_write(move |conn| queries::claim_due(conn, now, LEASE, BATCH))
            .await
        {
            Ok(items) => items,
            Err(e) => return self.unavailable(&e),
        };
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= BATCH;
        let work: Vec<_> = items
            .into_iter()
            .map(|item| {
                let worker = self.clone();
                tokio::spawn(async move { worker.work(item).await })
            })
            .collect();
        for handle in work {
            // A panic in one item's work is that item's; its lease runs out
            // and it is tried again.
            let _ = handle.await;
        }
        if full {
            return Duration::ZERO;
        }
        match self.db.background_read(queries::next_due).await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(IDLE),
            Ok(None) => IDLE,
            Err(e) => self.unavailable(&e),
        }
    }

    fn unavailable(&self, error: &DbError) -> Duration {
        if !error.is_refusal() {
            tracing::warn!(error = %error, "the release gate's worker cannot reach the database");
        }
        IDLE
    }

    /// When to try an item again after its `attempts`th failure.
    fn retry_after(&self, attempts: i32) -> chrono::Duration {
        let settings = self.gate.settings();
        let delay = ExponentialBuilder::default()
            .with_min_delay(settings.retry_min)
            .with_max_delay(settings.retry_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(usize::try_from(attempts.max(1) - 1).unwrap_or_default())
            .unwrap_or(settings.retry_max);
        chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::minutes(5))
    }

    async fn work(&self, item: OutboxItem) {
        let outcome = match item.work {
            Work::FetchApprovers => self.fetch_approvers(&item).await,
            Work::Mail | Work::Reminder => self.mail(&item).await,
        };
        if let Err(e) = outcome {
            // Its lease runs out and it is taken again.
            tracing::warn!(error = %e, item = item.seq, "a release gate item could not be recorded");
        }
    }

    async fn fetch_approvers(&self, item: &OutboxItem) -> Result<(), DbError> {
        let settings = self.gate.settings();
        let claimed = item.clone();
        let release = self
            .db
            .background_read(move |conn| queries::release_of(conn, &claimed))
            .await?;
        let now = Utc::now();
        if release.state_at(now) != ReleaseState::Pending {
            let claimed = item.clone();
            return self
                .db
                .background_write(move |conn| queries::skip(conn, &claimed, now))
                .await;
        }
        let key = &release.request.key;
        let (answer, origin) = match (&settings.approvers_file, &settings.approvers_url) {
            (Some(file), _) if file.of(&key.team_project).is_some() => (
                Answer::Approvers(file.of(&key.team_project).unwrap_or_default().to_vec()),
                "the approvers file",
            ),
            (_, Some(template)) => {
                let url = source::url_for(template, key, &release.request.release_name);
                (
                    source::ask(&self.client, &url, settings.dependency_timeout).await,
                    "the approver source",
                )
            }
            (Some(_), None) => (
                Answer::Refused(format!(
                    "the approvers file names nobody for the team project {:?}",
                    key.team_project
                )),
                "the approvers file",
            ),
            (None, None) => (
                Answer::Refused(
                    "no approver source is configured (--approvers-url or --approvers-file)".into(),
                ),
                "the server",
            ),
        };
        let now = Utc::now();
        let claimed = item.clone();
        match answer {
            Answer::Approvers(approvers) => {
                let policy = *self.gate.policy();
                let state = self
                    .db
                    .background_write(move |conn| {
                        queries::approvers_found(conn, &claimed, &approvers, origin, &policy, now)
                    })
                    .await?;
                tracing::info!(release = %key, %state, "approvers found");
                self.gate.wake();
            }
            Answer::Refused(reason) => {
                tracing::warn!(release = %key, %reason, "no approver can be found: the release fails");
                self.db
                    .background_write(move |conn| {
                        queries::approvers_failed(conn, &claimed, &reason, now)
                    })
                    .await?;
            }
            Answer::Unavailable(error) => {
                let next_at = now + self.retry_after(item.attempts);
                tracing::warn!(release = %key, %error, attempt = item.attempts, "the approver source is unavailable; trying again later");
                self.db
                    .background_write(move |conn| {
                        queries::approvers_unavailable(conn, &claimed, &error, next_at, now)
                    })
                    .await?;
            }
        }
        self.gate.changed();
        Ok(())
    }

    async fn mail(&self, item: &OutboxItem) -> Result<(), DbError> {
        let kind = if item.work == Work::Reminder {
            "reminder"
        } else {
            "request"
        };
        let mut bytes = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut bytes) {
            tracing::error!(error = %e, "no randomness for an approval link; trying again later");
            return Ok(());
        }
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let digest = LinkDigest::of(&token);
        let now = Utc::now();
        let claimed = item.clone();
        let Some(job) = self
            .db
            .background_write(move |conn| queries::prepare_mail(conn, &claimed, &digest, now))
            .await?
        else {
            return Ok(());
        };
        let sent = match &self.mailer {
            Some(mailer) => mailer.send(&job, self.gate.public_url(), &token).await,
            None => Err("no SMTP server is configured (--smtp-url)".to_owned()),
        };
        let now = Utc::now();
        let claimed = item.clone();
        match sent {
            Ok(()) => {
                self.gate
                    .metrics()
                    .mails
                    .with_label_values(&["sent", kind])
                    .inc();
                tracing::info!(release = %job.release.request.key, approver = %job.approver.email, kind, "approval mail sent");
                self.db
                    .background_write(move |conn| queries::mail_sent(conn, &claimed, &job, now))
                    .await
            }
            Err(error) => {
                self.gate
                    .metrics()
                    .mails
                    .with_label_values(&["failed", kind])
                    .inc();
                let next_at = now + self.retry_after(item.attempts);
                tracing::warn!(release = %job.release.request.key, approver = %job.approver.email, %error, attempt = item.attempts, "approval mail not sent; trying again later");
                self.db
                    .background_write(move |conn| {
                        queries::mail_failed(conn, &claimed, &job, &error, next_at, now)
                    })
                    .await
            }
        }
    }
}
