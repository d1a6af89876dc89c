//! A server of its own for each test, a spool of its own, and the binary.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use deploytime_server::access::{Role, Secret};
use deploytime_server::settings::Settings;
use deploytime_server::testing::mail_sink::MailSink;
use deploytime_server::testing::{RunningServer, TestDatabase, settings};
use serde_json::Value;

/// The variables a developer's or CI machine may set that would change what the
/// binary does: the tests set what they need themselves.
const AMBIENT: &[&str] = &[
    "DEPLOYTIME_URL",
    "DEPLOYTIME_TOKEN",
    "DEPLOYTIME_TIMEOUT",
    "DEPLOYTIME_RETRY_FOR",
    "DEPLOYTIME_SPOOL",
    "DEPLOYTIME_STRICT",
    "DEPLOYTIME_ENV",
    "DEPLOYTIME_DEPLOYMENT_ID",
    "DEPLOYTIME_RELEASE_ID",
    "DEPLOYTIME_RELEASE_PROJECT",
    "DEPLOYTIME_RELEASE_NAME",
    "DEPLOYTIME_REQUESTED_BY",
    "DEPLOYTIME_COMMITS_SINCE",
    "GITHUB_ACTIONS",
    "GITHUB_RUN_ID",
    "GITLAB_CI",
    "CI_PIPELINE_ID",
    "TF_BUILD",
    "BUILD_BUILDID",
    "JENKINS_URL",
    "BUILD_URL",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// A running server on a SQLite file in a temporary directory.
pub struct TestServer {
    pub url: String,
    http: reqwest::blocking::Client,
    /// The token the test's own reads send, when the server requires one.
    token: Option<String>,
    database: TestDatabase,
    handle: ServerHandle,
    runtime: tokio::runtime::Runtime,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(None)
    }

    /// A server that refuses anonymous calls and accepts `admin_token`.
    pub fn start_with_admin_token(admin_token: &str) -> TestServer {
        Self::start_with(Some(admin_token))
    }

    /// A server whose approver source never answers: its releases stay
    /// pending (with the reason), instead of failing at once for want of one.
    pub fn start_with_approver_source_down(admin_token: Option<&str>) -> TestServer {
        Self::start_with_settings(admin_token, |settings| {
            settings.gate.approvers_url = Some(format!(
                "{}/approvers/{{team_project}}",
                nothing_listening()
            ));
        })
    }

    /// A server whose release gate finds approvers in `approvers` (an approvers
    /// file's JSON) and mails them through `sink`.
    pub fn start_with_approvers(sink: &MailSink, approvers: &str) -> TestServer {
        let file = deploytime_core::release::StaticApprovers::parse(approvers.as_bytes()).unwrap();
        let smtp = sink.url();
        Self::start_with_settings(None, move |settings| {
            settings.gate.approvers_file = Some(file);
            settings.gate.smtp_url = Some(Secret::new(smtp));
        })
    }

    fn start_with(admin_token: Option<&str>) -> TestServer {
        Self::start_with_settings(admin_token, |_| {})
    }

    fn start_with_settings(
        admin_token: Option<&str>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let database = TestDatabase::create(deploytime_server::testing::Backend::Sqlite).unwrap();
        let mut settings = Settings {
            admin_token: admin_token.map(Secret::new),
            pool_size: 4,
            workers: Some(1),
            ..settings(&database.url)
        };
        adjust(&mut settings);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = {
            let _context = runtime.enter();
            RunningServer::start(&settings).expect("the server starts")
        };
        let url = server.url.clone();
        let handle = server.handle();
        TestServer {
            url,
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .build()
                .unwrap(),
            token: admin_token.map(str::to_owned),
            database,
            handle,
            runtime,
        }
    }

    /// Creates a token with this role, limited to `scope` (`component=api`...).
    pub fn create_token(&self, name: &str, role: Role, scope: &[&str]) -> String {
        let scope: Vec<String> = scope.iter().map(|s| (*s).to_owned()).collect();
        deploytime_server::access::tokens::create(&self.database.url, name, role, &scope).unwrap()
    }

    pub fn get(&self, path: &str) -> Value {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap();
        let status = response.status();
        let text = response.text().unwrap();
        assert!(status.is_success(), "GET {path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// A deployment with its events.
    pub fn deployment(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/deployments/{id}"))
    }

    pub fn deployments(&self) -> Vec<Value> {
        self.get("/api/v1/deployments?limit=1000")["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.get("/api/v1/events?limit=1000")["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.runtime.block_on(self.handle.stop(true));
    }
}

/// A loopback address where nothing listens: the server is down.
pub fn nothing_listening() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A spool of the test's own, so that tests never send each other's events.
pub struct TestSpool {
    dir: tempfile::TempDir,
}

impl TestSpool {
    pub fn new() -> TestSpool {
        TestSpool {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("spool.jsonl")
    }

    pub fn rejected_path(&self) -> PathBuf {
        self.dir.path().join("spool.jsonl.rejected")
    }

    /// The events waiting in the spool.
    pub fn events(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.path()) {
            Ok(text) => text
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap()["event"].clone())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("reading the spool: {e}"),
        }
    }

    /// `deploytime` against `url`, with this spool and nothing from the
    /// environment the test runs in.
    pub fn deploytime(&self, url: &str) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::cargo_bin("deploytime").unwrap();
        for name in AMBIENT {
            command.env_remove(name);
        }
        // In a directory of its own, outside any git checkout: the commits a
        // deployment ships are collected only where a test makes a repository.
        command
            .current_dir(self.dir.path())
            .env("DEPLOYTIME_URL", url)
            .env("DEPLOYTIME_SPOOL", self.path())
            .timeout(Duration::from_secs(60));
        command
    }

    /// The same as a `std` command, for tests that signal the process.
    pub fn std_command(&self, url: &str) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("deploytime"));
        for name in AMBIENT {
            command.env_remove(name);
        }
        command
            .current_dir(self.dir.path())
            .env("DEPLOYTIME_URL", url)
            .env("DEPLOYTIME_SPOOL", self.path());
        command
    }
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Polls `check` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

pub fn exists(path: &Path) -> bool {
    path.try_exists().unwrap()
}

/// A TCP proxy to `upstream` that lets the server answer the first request, then
/// drops the client's connection without passing the answer on: the client
/// cannot know its request was stored. Later connections pass through.
pub struct DroppingProxy {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
}

impl DroppingProxy {
    pub fn start(upstream: &str) -> DroppingProxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let seen = counter.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    if seen == 0 {
                        drop_the_answer(client, server);
                    } else {
                        pass_through(client, server);
                    }
                });
            }
        });
        DroppingProxy { url, connections }
    }
}

fn drop_the_answer(client: TcpStream, mut server: TcpStream) {
    let mut to_server = server.try_clone().unwrap();
    let mut from_client = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
    });
    // The first byte of the answer proves the server handled the request.
    let mut byte = [0u8; 1];
    let _ = server.read(&mut byte);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn pass_through(client: TcpStream, server: TcpStream) {
    let (mut client_read, mut client_write) = (client.try_clone().unwrap(), client);
    let (mut server_read, mut server_write) = (server.try_clone().unwrap(), server);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server_read, &mut client_write);
    let _ = client_write.flush();
    let _ = client_write.shutdown(Shutdown::Both);
}
