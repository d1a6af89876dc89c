//! The dashboard in a real headless Chromium, driven through ChromeDriver (the
//! `browser-tests` feature; `.ci/run` installs Debian's chromium and
//! chromium-driver). The figures a person reads equal the API's, every panel
//! follows the filters, pages link to each other, signing in and out works,
//! and no page logs a console error or asks for anything outside this server.
//! Screenshots go to target/screenshots/.

#![cfg(feature = "browser-tests")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deploytime_server::access::{Role, Secret};
use deploytime_server::db::seed::{SeedPlan, seed};
use deploytime_server::settings::Settings;
use deploytime_server::testing::{Backend, RunningServer, TestDatabase, settings};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ChromeDriver on a port of its own, stopped with the test.
struct Driver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let port = free_port();
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the browser tests need ChromeDriver ({binary}: {e}); install Debian's chromium and chromium-driver"
            )
        });
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "ChromeDriver did not start on {url}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver {
        child,
        url,
        profile: tempfile::tempdir().unwrap(),
    }
}

async fn browser(driver: &Driver) -> Client {
    // Both of the workspace's crypto providers are compiled in: name one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let profile = driver.profile.path().display().to_string();
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={profile}"),
                // Any host but this machine resolves to nothing: a page that
                // asked for one would fail and show in its resource list.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--window-size=1400,2000",
            ],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// ChromeDriver's console log of the page (its extension of the protocol).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// What a page logged at SEVERE, and every address it asked for that is not
/// this server.
async fn check_page_is_clean(client: &Client, server: &str) {
    check_page_is_clean_but(client, server, &[]).await;
}

/// As [`check_page_is_clean`], allowing the SEVERE entries that mention one
/// of `expected` (Chrome logs every 4xx answer to a page as an error, and a
/// refused sign-in answers 401 on purpose).
async fn check_page_is_clean_but(client: &Client, server: &str, expected: &[&str]) {
    let log = client.issue_cmd(BrowserLog).await.unwrap();
    let severe: Vec<&Value> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            !expected.iter().any(|allowed| message.contains(allowed))
        })
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    let asked = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
            vec![],
        )
        .await
        .unwrap();
    for url in asked.as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(url.starts_with(server), "a request left this server: {url}");
    }
}

/// Does `action` (a click, a submit) and returns once the browser is on the
/// page it led to: the old document carries a mark the new one lacks, and the
/// new one has loaded.
async fn navigating<F, Fut>(client: &Client, action: F) -> url::Url
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    client
        .execute("window.__leaving = true;", vec![])
        .await
        .unwrap();
    action().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let arrived = client
            .execute(
                "return window.__leaving === undefined && document.readyState === 'complete';",
                vec![],
            )
            .await
            .unwrap_or(Value::Bool(false));
        if arrived == Value::Bool(true) {
            return client.current_url().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no new page after 20 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text_of(client: &Client, css: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for row in client.find_all(Locator::Css(css)).await.unwrap() {
        let mut cells = Vec::new();
        for cell in row.find_all(Locator::Css("th, td")).await.unwrap() {
            cells.push(
                cell.text()
                    .await
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        rows.push(cells);
    }
    rows
}

async fn api(server: &str, path: &str) -> Value {
    reqwest::get(format!("{server}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A server on a database with some weeks of history of a few components.
async fn seeded(configure: impl FnOnce(&mut Settings)) -> (RunningServer, TestDatabase) {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let url = database.url.clone();
    let plan = SeedPlan {
        deployments: 3_000,
        components: 4,
        environments: 3,
        days: 45,
        seed: 11,
    };
    tokio::task::spawn_blocking(move || seed(&url, &plan))
        .await
        .unwrap()
        .unwrap();
    let mut settings = settings(&database.url);
    configure(&mut settings);
    (RunningServer::start(&settings).unwrap(), database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reads_the_apis_figures_and_follows_the_filters() {
    let (server, _database) = seeded(|_| {}).await;
    let driver = chromedriver();
    let client = browser(&driver).await;
    // The seeded history has incidents in production only; two more of one
    // component in staging, one of them still open.
    let hours_ago = |h: i64| {
        (chrono::Utc::now() - chrono::Duration::hours(h))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    for incident in [
        json!({"component": "service-001", "environment": "staging",
               "started_at": hours_ago(5), "resolved_at": hours_ago(4)}),
        json!({"component": "service-001", "environment": "staging",
               "started_at": hours_ago(1)}),
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/incidents", server.url))
            .json(&incident)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    client.goto(&format!("{}/", server.url)).await.unwrap();
    let headings = text_of(&client, "#components-table thead tr")
        .await
        .remove(0);
    let incidents_column = headings.iter().position(|h| h == "Incidents").unwrap();
    let rows = text_of(&client, "#components-table tbody tr").await;
    let stats = api(&server.url, "/api/v1/stats?group_by=component,environment").await;
    let groups = stats["groups"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        groups.len(),
        "one row per component and environment"
    );
    for (row, group) in rows.iter().zip(groups) {
        assert_eq!(row[0], group["component"].as_str().unwrap());
        assert_eq!(row[1], group["environment"].as_str().unwrap());
        assert_eq!(row[2], group["deployments"].to_string(), "{row:?}");
        let rate = group["success_rate"].as_f64().unwrap();
        assert_eq!(row[3], format!("{:.0}%", rate * 100.0), "{row:?}");
        let incidents = &group["incidents"];
        let shown = row[incidents_column].split(' ').next().unwrap();
        match incidents["count"].as_u64().unwrap() {
            0 => assert_eq!(shown, "-", "{row:?}"),
            count => {
                assert_eq!(shown, count.to_string(), "{row:?}");
                let open = incidents["unresolved"].as_u64().unwrap();
                assert_eq!(
                    row[incidents_column].ends_with(&format!("{open} open")),
                    open > 0,
                    "{row:?}"
                );
            }
        }
    }
    let with_incidents = rows
        .iter()
        .find(|row| row[0] == "service-001" && row[1] == "staging")
        .unwrap();
    assert!(
        with_incidents[incidents_column].starts_with("2 restored in 1h"),
        "{with_incidents:?}"
    );
    assert!(
        groups
            .iter()
            .any(|g| g["environment"] == "production" && g["incidents"]["count"] != 0),
        "no seeded incident in the window: {stats}"
    );
    check_page_is_clean(&client, &server.url).await;
    screenshot(&client, "overview").await;

    // A narrower window and one environment: every panel follows.
    let form = client.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("window", "7d").await.unwrap();
    client
        .find(Locator::Css("input[name=env][value=production]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let url = navigating(&client, || async { form.submit().await.unwrap() }).await;
    let query = url.query().unwrap_or_default().to_owned();
    assert!(
        query.contains("window=7d") && query.contains("env=production"),
        "{query}"
    );
    let rows = text_of(&client, "#components-table tbody tr").await;
    let stats = api(
        &server.url,
        &format!(
            "/api/v1/stats?group_by=component,environment&environment=production&since={}",
            (chrono::Utc::now() - chrono::Duration::days(7))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    )
    .await;
    assert!(rows.iter().all(|row| row[1] == "production"), "{rows:?}");
    let total: u64 = rows
        .iter()
        .map(|row| row[2].lines().next().unwrap().parse::<u64>().unwrap())
        .sum();
    let expected: u64 = stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["deployments"].as_u64().unwrap())
        .sum();
    // The API's window is read a moment later: a deployment may sit on its edge.
    assert!(
        total.abs_diff(expected) <= 1,
        "{total} on the page, {expected} from the API"
    );
    let cards = client
        .find(Locator::Css(".cards"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(cards.contains("Deployment frequency"), "{cards}");

    // A component's page keeps the filters; a deployment's page is a click away.
    let link = client
        .find(Locator::Css("#components-table tbody tr th a"))
        .await
        .unwrap();
    let url = navigating(&client, || async { link.click().await.unwrap() }).await;
    assert_eq!(url.path(), "/component");
    assert!(url.query().unwrap_or_default().contains("env=production"));
    let charts = client.find_all(Locator::Css(".chart svg")).await.unwrap();
    assert_eq!(charts.len(), 3, "three charts");
    let deployments = text_of(&client, "#deployments-table tbody tr").await;
    assert!(!deployments.is_empty());
    assert!(
        deployments.iter().all(|d| d[1] == "production"),
        "{deployments:?}"
    );
    check_page_is_clean(&client, &server.url).await;
    screenshot(&client, "component").await;
    let link = client
        .find(Locator::Css("#deployments-table tbody tr a"))
        .await
        .unwrap();
    let url = navigating(&client, || async { link.click().await.unwrap() }).await;
    assert!(url.path().starts_with("/deployments/"), "{url}");
    let body = client
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains("Events") && body.contains("against the median"),
        "{body}"
    );
    check_page_is_clean(&client, &server.url).await;

    // A filter the API refuses is refused on the page, in words.
    client
        .goto(&format!("{}/?tz=Mars/Olympus", server.url))
        .await
        .unwrap();
    let alert = client
        .find(Locator::Css("[role=alert]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(alert.contains("IANA time zone"), "{alert}");

    client.close().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_a_read_token_and_out_again() {
    const ADMIN: &str = "browser-admin-token-0123456789abcdef0123";
    let (server, database) = seeded(|s| s.admin_token = Some(Secret::new(ADMIN))).await;
    let url = database.url.clone();
    let reader = tokio::task::spawn_blocking(move || {
        deploytime_server::access::tokens::create(&url, "dashboard", Role::Read, &[])
    })
    .await
    .unwrap()
    .unwrap();
    let driver = chromedriver();
    let client = browser(&driver).await;

    client.goto(&format!("{}/", server.url)).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/sign-in");
    let form = client.form(Locator::Css("main form")).await.unwrap();
    form.set_by_name("token", "dt_wrong").await.unwrap();
    navigating(&client, || async { form.submit().await.unwrap() }).await;
    let alert = client
        .find(Locator::Css("[role=alert]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(alert.contains("not valid"), "{alert}");
    let form = client.form(Locator::Css("main form")).await.unwrap();
    form.set_by_name("token", &reader).await.unwrap();
    let url = navigating(&client, || async { form.submit().await.unwrap() }).await;
    assert_eq!(url.path(), "/");
    assert!(
        !url.as_str().contains(&reader),
        "the token is never in a URL"
    );
    assert!(
        !client
            .find_all(Locator::Css("#components-table"))
            .await
            .unwrap()
            .is_empty()
    );
    // The cookie is out of the page's reach.
    let cookies = client
        .execute("return document.cookie;", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, json!(""), "HttpOnly");
    check_page_is_clean_but(
        &client,
        &server.url,
        &["/sign-in - Failed to load resource: the server responded with a status of 401"],
    )
    .await;

    let sign_out = client
        .find(Locator::Css("header form button"))
        .await
        .unwrap();
    let url = navigating(&client, || async { sign_out.click().await.unwrap() }).await;
    assert_eq!(url.path(), "/sign-in");
    client.goto(&format!("{}/", server.url)).await.unwrap();
    assert_eq!(
        client.current_url().await.unwrap().path(),
        "/sign-in",
        "signed out"
    );

    client.close().await.unwrap();
    server.stop().await.unwrap();
}

/// An approver opens the link of the mail that arrived, reads the release,
/// writes a comment and approves it. The page runs no script at all (its
/// Content-Security-Policy allows none), so it works without JavaScript.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_from_the_mails_link() {
    use deploytime_server::testing::mail_sink::MailSink;

    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let sink = MailSink::start();
    let mut settings = settings(&database.url);
    settings.gate.approvers_file = Some(
        deploytime_core::release::StaticApprovers::parse(
            br#"{"Devx": [{"email": "ana@example.com", "name": "Ana"}]}"#,
        )
        .unwrap(),
    );
    settings.gate.smtp_url = Some(Secret::new(sink.url()));
    let server = RunningServer::start(&settings).unwrap();
    let registered = reqwest::Client::new()
        .post(format!("{}/api/v1/releases", server.url))
        .json(
            &json!({"release_name": "Desafio-CD", "release_id": "386", "team_project": "Devx",
                      "version": "1.4.2"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let mails = sink.wait_for(1, Duration::from_secs(20)).await;
    let body = mails[0].body_text();
    let link = body
        .split_whitespace()
        .find(|word| word.contains("/approval?token="))
        .unwrap()
        .to_owned();
    assert!(link.starts_with(&server.url), "{link}");

    let driver = chromedriver();
    let client = browser(&driver).await;
    client.goto(&link).await.unwrap();
    let facts = client
        .find(Locator::Css("dl.facts"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(facts.contains("Desafio-CD (#386)"), "{facts}");
    assert!(facts.contains("1.4.2"), "{facts}");
    assert!(facts.contains("Ana <ana@example.com>"), "{facts}");
    let scripts = client.find_all(Locator::Css("script")).await.unwrap();
    assert!(scripts.is_empty(), "the page needs no script");
    check_page_is_clean(&client, &server.url).await;
    screenshot(&client, "approval").await;
    assert_eq!(
        api(&server.url, "/api/v1/releases/Devx/386").await["state"],
        "pending",
        "opening the link decides nothing"
    );

    client
        .find(Locator::Css("#comment"))
        .await
        .unwrap()
        .send_keys("ship it")
        .await
        .unwrap();
    let approve = client
        .find(Locator::Css(r#"button[value="approve"]"#))
        .await
        .unwrap();
    navigating(&client, || async { approve.click().await.unwrap() }).await;
    let said = client
        .find(Locator::Css(".done"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(said.contains("now approved"), "{said}");
    screenshot(&client, "approval-done").await;
    let release = api(&server.url, "/api/v1/releases/Devx/386").await;
    assert_eq!(release["state"], "approved");
    assert_eq!(release["approvers"][0]["comment"], "ship it");

    // Back to the link: it is spent, and says so.
    client.goto(&link).await.unwrap();
    let heading = client
        .find(Locator::Css("main h2"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "This link has already been used");

    client.close().await.unwrap();
    server.stop().await.unwrap();
}
