//! Starting the server for a test, and talking to it.

use std::path::PathBuf;

use actix_web::dev::ServerHandle;
use deploytime_server::auth::Role;
use deploytime_server::config::Settings;
use deploytime_server::db::{Database, DatabaseUrl};
use deploytime_server::startup::Application;
use serde_json::Value;
use tokio::task::JoinHandle;

/// Runs the given async test functions once per backend: always on SQLite, and on
/// MySQL when the crate is built with `--features mysql`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        #[cfg(feature = "mysql")]
        mod on_mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Mysql).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Mysql,
}

/// A database of its own for one test, removed when the test ends.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    #[cfg(feature = "mysql")]
    mysql: Option<(String, String)>,
}

/// The MySQL server tests create their databases on, from
/// `DEPLOYTIME_TEST_MYSQL_URL` (e.g. `mysql://root@127.0.0.1:3306`).
#[cfg(feature = "mysql")]
pub fn mysql_admin_url() -> url::Url {
    let raw = std::env::var("DEPLOYTIME_TEST_MYSQL_URL").expect(
        "the mysql feature is on, so the MySQL tests run: set DEPLOYTIME_TEST_MYSQL_URL \
         (e.g. mysql://root@127.0.0.1:3306) to a server where databases may be created",
    );
    url::Url::parse(&raw).expect("DEPLOYTIME_TEST_MYSQL_URL is a URL")
}

impl TestDatabase {
    /// A SQLite database in a directory of its own, `DIR/data/deploytime.db`, so
    /// that a test can take the directory away and bring it back.
    pub fn sqlite_in_data_dir() -> (Self, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let database = TestDatabase {
            url: DatabaseUrl::Sqlite(data.join("deploytime.db")),
            _dir: Some(dir),
            #[cfg(feature = "mysql")]
            mysql: None,
        };
        (database, data)
    }

    pub fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path: PathBuf = dir.path().join("deploytime.db");
                TestDatabase {
                    url: DatabaseUrl::Sqlite(path),
                    _dir: Some(dir),
                    #[cfg(feature = "mysql")]
                    mysql: None,
                }
            }
            #[cfg(feature = "mysql")]
            Backend::Mysql => {
                use diesel::Connection;
                use diesel::connection::SimpleConnection;
                let admin = mysql_admin_url();
                let name = format!("dt_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::mysql::MysqlConnection::establish(admin.as_str())
                    .expect("connect to DEPLOYTIME_TEST_MYSQL_URL");
                conn.batch_execute(&format!("CREATE DATABASE `{name}`"))
                    .unwrap();
                let mut url = admin.clone();
                url.set_path(&format!("/{name}"));
                TestDatabase {
                    url: DatabaseUrl::parse(url.as_str()).unwrap(),
                    _dir: None,
                    mysql: Some((admin.to_string(), name)),
                }
            }
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => unreachable!("MySQL tests are compiled only with the mysql feature"),
        }
    }
}

#[cfg(feature = "mysql")]
impl Drop for TestDatabase {
    fn drop(&mut self) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        if let Some((admin, name)) = &self.mysql
            && let Ok(mut conn) = diesel::mysql::MysqlConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"));
        }
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub database: TestDatabase,
    /// The server's own pool, to hold connections or wait for its work in tests.
    pub db: Database,
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

pub fn settings(url: &DatabaseUrl) -> Settings {
    Settings {
        workers: Some(2),
        shutdown_timeout: 5,
        handle_signals: false,
        // The test database server is shared (other suites, benchmarks): a slow
        // moment must not turn into a 503 that fails an unrelated test. The
        // outage tests set their own short timeout.
        db_timeout: std::time::Duration::from_secs(10),
        ..Settings::new("127.0.0.1:0", url.clone())
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            deploytime_server::telemetry::init(deploytime_server::config::LogFormat::Text);
        }
        Self::start(TestDatabase::create(backend))
    }

    /// A server with settings of the test's choosing.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        Self::start_with(TestDatabase::create(backend), configure)
    }

    fn start(database: TestDatabase) -> TestApp {
        Self::start_with(database, |_| {})
    }

    pub fn start_with(database: TestDatabase, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = settings(&database.url);
        configure(&mut settings);
        let app = Application::build(&settings).expect("the server starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let db = app.database().clone();
        let task = tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::new(),
            database,
            db,
            handle,
            task,
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
                Ok::<_, ()>(())
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
            deploytime_server::tokens::create(&url, &name, role, &scope)
        })
        .await
        .unwrap()
        .unwrap()
    }

    /// Revokes a token the way `deploytime-server token revoke` does.
    pub async fn revoke_token(&self, name: &str) {
        let url = self.database.url.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || deploytime_server::tokens::revoke(&url, &name))
            .await
            .unwrap()
            .unwrap()
    }

    /// Stops the server gracefully and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            database,
            handle,
            task,
            ..
        } = self;
        handle.stop(true).await;
        task.await.unwrap().unwrap();
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
