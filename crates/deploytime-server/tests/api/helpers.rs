//! Starting the server for a test, and talking to it.

use deploytime_server::access::Role;
use deploytime_server::db::Database;
use deploytime_server::settings::Settings;
use deploytime_server::testing::RunningServer;
use serde_json::Value;

pub use deploytime_server::testing::{Backend, TestDatabase, settings};

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: TestDatabase,
    /// The server's own database handle, to hold connections or wait for its
    /// work in tests.
    pub db: Database,
    server: RunningServer,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            deploytime_server::telemetry::init(deploytime_server::telemetry::LogFormat::Text);
        }
        Self::start(TestDatabase::create(backend).unwrap())
    }

    /// A server with settings of the test's choosing.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::start_with(TestDatabase::create(backend).unwrap(), configure)
    }

    fn start(database: TestDatabase) -> TestApp {
        Self::start_with(database, |_| {})
    }

    pub fn start_with(database: TestDatabase, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = settings(&database.url);
        configure(&mut settings);
        let server = RunningServer::start(&settings).expect("the server starts");
        TestApp {
            address: server.url.clone(),
            client: reqwest::Client::new(),
            database,
            db: server.db.clone(),
            server,
        }
    }

    /// Holds one of the server's database connections until the returned sender
    /// is dropped or sent to.
    pub async fn hold_database(&self) -> std::sync::mpsc::Sender<()> {
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let db = self.db.clone();
        tokio::spawn(async move {
            db.read(move |_conn| {
                let _ = entered_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .await
        });
        entered_rx.await.unwrap();
        release_tx
    }

    /// Creates a token the way `deploytime-server token create` does.
    pub async fn create_token(&self, name: &str, role: Role, scope: &[&str]) -> String {
        let url = self.database.url.clone();
        let name = name.to_owned();
        let scope: Vec<String> = scope.iter().map(|s| (*s).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            deploytime_server::access::tokens::create(&url, &name, role, &scope)
        })
        .await
        .unwrap()
        .unwrap()
    }

    /// Revokes a token the way `deploytime-server token revoke` does.
    pub async fn revoke_token(&self, name: &str) {
        let url = self.database.url.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || deploytime_server::access::tokens::revoke(&url, &name))
            .await
            .unwrap()
            .unwrap()
    }

    /// Stops the server gracefully and starts a new one on the same database,
    /// with settings of the test's choosing.
    pub async fn restart_with(self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let TestApp {
            database, server, ..
        } = self;
        server.stop().await.unwrap();
        Self::start_with(database, configure)
    }

    /// Stops the server gracefully and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            database, server, ..
        } = self;
        server.stop().await.unwrap();
        Self::start(database)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/events"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, pairs: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/events"))
            .form(pairs)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A GET that must answer 200 with JSON; returns the body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every page of a listing, following `next_cursor` until the last page.
    pub async fn pages(&self, path: &str) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.to_owned(),
            };
            let body = self.get_json(&page_path).await;
            pages.push(body["items"].as_array().unwrap().clone());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return pages,
            }
        }
    }

    /// Stores an event that must be accepted, and returns the response body.
    pub async fn store(&self, body: Value) -> Value {
        let response = self.post_json(body.clone()).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "storing {body} answered {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn deployment(&self, id: &str) -> Value {
        let response = self.get(&format!("/api/v1/deployments/{id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn all_deployments(&self) -> Vec<Value> {
        let response = self.get("/api/v1/deployments?limit=1000").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["items"].as_array().unwrap().clone()
    }
}

/// Asserts an RFC 9457 problem response with the given status, and returns its body.
pub async fn expect_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    body
}

/// The fields named in a validation problem's `errors` list.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An RFC 3339 timestamp `seconds` from now (negative: in the past).
pub fn at(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The text of each cell of each body row of a page's `table` (a CSS
/// selector), with runs of white space made one space.
pub fn cells(page: &scraper::Html, table: &str) -> Vec<Vec<String>> {
    let rows = scraper::Selector::parse(&format!("{table} tbody tr")).unwrap();
    let cell = scraper::Selector::parse("th, td").unwrap();
    page.select(&rows)
        .map(|row| row.select(&cell).map(text).collect())
        .collect()
}

/// The text of each element of a page that `css` selects, with runs of
/// white space made one space.
pub fn texts(page: &scraper::Html, css: &str) -> Vec<String> {
    let selector = scraper::Selector::parse(css).unwrap();
    page.select(&selector).map(text).collect()
}

fn text(element: scraper::ElementRef<'_>) -> String {
    element
        .text()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
