//! The test doubles themselves, driven by real clients: if these fail, the
//! gate's tests built on them prove nothing.

use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::approver_source::ApproverSource;
use deploytime_server::testing::mail_sink::MailSink;

const WAIT: Duration = Duration::from_secs(10);

fn transport(url: &str) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .expect("a lettre SMTP URL")
        .timeout(Some(WAIT))
        .build()
}

fn approval_request(subject: &str) -> Message {
    Message::builder()
        .from("Deploytime <deploytime@example.test>".parse().unwrap())
        .to("alice@example.test".parse().unwrap())
        .to("Bob <bob@example.test>".parse().unwrap())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        // Non-ASCII, so lettre picks a transfer encoding the sink has to undo.
        .body("Release r42 of Zürich/api waits for your approval.\n\n— deploytime".to_owned())
        .unwrap()
}

#[tokio::test]
async fn mail_sink_records_what_an_smtp_client_sends() {
    let sink = MailSink::start();

    transport(&sink.url())
        .send(approval_request("Approve r42 — Zürich/api"))
        .await
        .unwrap();

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "deploytime@example.test");
    assert_eq!(mail.to, ["alice@example.test", "bob@example.test"]);
    assert_eq!(mail.subject(), "Approve r42 — Zürich/api");
    assert!(
        mail.header("Content-Transfer-Encoding").is_some(),
        "lettre encoded the body: {}",
        mail.data
    );
    assert!(!mail.data.contains("Zürich/api waits"), "{}", mail.data);
    assert_eq!(
        mail.body_text(),
        "Release r42 of Zürich/api waits for your approval.\n\n— deploytime\n"
    );
    assert_eq!(
        mail.header("To").unwrap(),
        "alice@example.test, Bob <bob@example.test>"
    );
}

#[tokio::test]
async fn a_reserved_sink_refuses_connections_until_started() {
    let (port, pending) = MailSink::reserve();
    let url = format!("smtp://127.0.0.1:{port}");

    let down = transport(&url).send(approval_request("while down")).await;
    let err = down.expect_err("nothing listens on a reserved port");
    assert!(
        err.status().is_none(),
        "a connection error, not an SMTP reply: {err:?}"
    );

    let sink = pending.start();
    assert_eq!(sink.url(), url);
    transport(&url)
        .send(approval_request("back up"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject(), "back up");
}

#[tokio::test]
async fn a_refusing_sink_fails_transiently_and_records_nothing() {
    let sink = MailSink::start();
    let transport = transport(&sink.url());

    sink.refuse_with_451(true);
    let err = transport
        .send(approval_request("refused"))
        .await
        .expect_err("the sink refuses");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(451));
    assert!(sink.mails().is_empty());

    sink.refuse_with_451(false);
    transport.send(approval_request("accepted")).await.unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    let subjects: Vec<String> = mails.iter().map(|m| m.subject()).collect();
    assert_eq!(subjects, ["accepted"]);
}

#[tokio::test]
async fn approver_source_answers_as_configured_and_records_hits() {
    let source = ApproverSource::start();
    let client = reqwest::Client::new();
    let template = source.url("/approvers/{team_project}/{release_id}");
    assert!(
        template.starts_with("http://127.0.0.1:")
            && template.ends_with("/approvers/{team_project}/{release_id}"),
        "{template}"
    );
    let get = |path: &str| client.get(source.url(path)).send();

    let unset = get("/approvers/a/1").await.unwrap();
    assert_eq!(unset.status(), 503);

    source.answer(200, r#"{"approvers":["alice"]}"#);
    source.answer_for("/approvers/team%2Fb/2", 404, "unknown release");
    let all = get("/approvers/a/1").await.unwrap();
    assert_eq!(all.status(), 200);
    assert_eq!(all.headers()["content-type"], "application/json");
    assert_eq!(all.text().await.unwrap(), r#"{"approvers":["alice"]}"#);
    let one = get("/approvers/team%2Fb/2?fresh=1").await.unwrap();
    assert_eq!(one.status(), 404);
    assert_eq!(one.text().await.unwrap(), "unknown release");

    assert_eq!(
        source.hits(),
        [
            "/approvers/a/1",
            "/approvers/a/1",
            "/approvers/team%2Fb/2?fresh=1"
        ]
    );
}

#[tokio::test]
async fn a_slow_approver_source_records_the_hit_before_answering() {
    let source = ApproverSource::start();
    source.answer(200, "[]");
    let delay = Duration::from_secs(1);
    source.delay(delay);
    let url = source.url("/approvers/slow/1");

    let started = Instant::now();
    let request = tokio::spawn(reqwest::get(url.clone()));
    let hits = source.wait_for_hits(1, WAIT).await;
    assert_eq!(hits, ["/approvers/slow/1"]);
    assert!(!request.is_finished(), "the answer is still held back");
    let response = request.await.unwrap().unwrap();
    assert!(started.elapsed() >= delay);
    assert_eq!(response.status(), 200);

    let impatient = reqwest::Client::builder()
        .timeout(delay / 4)
        .build()
        .unwrap();
    let err = impatient.get(&url).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(source.wait_for_hits(2, WAIT).await.len(), 2);
}
