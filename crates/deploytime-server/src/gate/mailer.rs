//! The approval mail: one per approver (and one reminder), sent by SMTP with
//! lettre. The link's token is only ever in the mail's body: never logged,
//! never stored (only its digest is).

use std::time::Duration;

use deploytime_core::time::format_rfc3339;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::db::queries::MailJob;

/// Why the mail settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailSettingsError {
    #[error(
        "the SMTP URL is not usable: {0} (write smtp://host:25, smtp://user:password@host:587?tls=required or smtps://host:465)"
    )]
    SmtpUrl(String),
    #[error("the sender address {0:?} is not usable: {1}")]
    From(String, String),
}

/// A mail server to send through, and who the mails are from.
pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Reads the settings; the URL's password stays inside lettre's transport
    /// and errors never show the URL.
    pub(super) fn new(
        smtp_url: &str,
        from: &str,
        timeout: Duration,
    ) -> Result<Self, MailSettingsError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| MailSettingsError::SmtpUrl(e.to_string()))?
            .timeout(Some(timeout))
            .build();
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| MailSettingsError::From(from.to_owned(), e.to_string()))?;
        Ok(Mailer { transport, from })
    }

    /// Sends one approver their mail with the link `token` opens.
    pub(super) async fn send(
        &self,
        job: &MailJob,
        public_url: &str,
        token: &str,
    ) -> Result<(), String> {
        let message = compose(job, &self.from, public_url, token)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The host part of the Message-ID: the public URL's host.
fn id_domain(public_url: &str) -> String {
    url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "deploytime.invalid".to_owned())
}

/// The mail itself. Its Message-ID is the same on every attempt, so that a
/// mail sent again after a crash between sending and recording it is folded
/// into the first by the mail clients that dedupe by Message-ID.
fn compose(
    job: &MailJob,
    from: &Mailbox,
    public_url: &str,
    token: &str,
) -> Result<Message, String> {
    let release = &job.release.request;
    let to: Mailbox = job
        .approver
        .email
        .parse()
        .map_err(|e| format!("the address {:?} is not usable: {e}", job.approver.email))?;
    let to = Mailbox::new(job.approver.name.clone(), to.email);
    let kind = if job.reminder { "reminder" } else { "request" };
    let subject = format!(
        "{}Approval requested: {} ({} #{})",
        if job.reminder { "Reminder: " } else { "" },
        release.release_name,
        release.key.team_project,
        release.key.release_id
    );
    let link = format!(
        "{}/approval?token={token}",
        public_url.trim_end_matches('/')
    );
    let mut details = vec![
        format!(
            "  Release:       {} (#{})",
            release.release_name, release.key.release_id
        ),
        format!("  Team project:  {}", release.key.team_project),
    ];
    if let Some(component) = &release.component {
        details.push(format!("  Component:     {component}"));
    }
    if let Some(environment) = &release.environment {
        details.push(format!("  Environment:   {environment}"));
    }
    if let Some(version) = &release.version {
        details.push(format!("  Version:       {version}"));
    }
    if let Some(needed) = job.release.needed {
        details.push(format!("  Approvals:     {needed} required"));
    }
    details.push(format!(
        "  Expires:       {}",
        format_rfc3339(job.release.expires_at)
    ));
    let greeting = job.approver.name.as_deref().unwrap_or(&job.approver.email);
    let asker = release.requested_by.as_deref().unwrap_or("A pipeline");
    let own = if job.may_approve {
        ""
    } else {
        "\nYou requested this release, so your approval does not count; you may\nstill reject it.\n"
    };
    let body = format!(
        "Hello {greeting},\n\n\
         {asker} asks for your approval of a release{}:\n\n\
         {}\n\n\
         Open this link to approve or reject it. It is yours alone, works once,\n\
         and expires with the release:\n\n  {link}\n\n\
         Opening the link decides nothing: the page it shows has the buttons.\n{own}\n\
         -- \ndeploytime\n",
        if job.reminder {
            " (a reminder: you have not answered yet)"
        } else {
            ""
        },
        details.join("\n"),
    );
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(format!(
            "<{kind}-{}-{}@{}>",
            job.release_seq,
            job.approver_seq,
            id_domain(public_url)
        )))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("the mail cannot be built: {e}"))
}
