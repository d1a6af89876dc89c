//! What operators see: Prometheus metrics that parse and move, request ids, and
//! logs that never contain a token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use prometheus_parse::{Scrape, Value};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

async fn scrape(app: &TestApp) -> Scrape {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count)
                .unwrap_or(f64::NAN),
            Value::Summary(_) => f64::NAN,
        })
}

fn bucket(scrape: &Scrape, name: &str, labels: &[(&str, &str)], le: f64) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match &s.value {
            Value::Histogram(buckets) => {
                buckets.iter().find(|b| b.less_than == le).map(|b| b.count)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no bucket le={le} of {name}"))
}

async fn metrics_parse_and_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = scrape(&app).await;
    let backend_name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Mysql => "mysql",
    };
    assert_eq!(
        value(
            &before,
            "deploytime_build_info",
            &[("backend", backend_name)]
        ),
        Some(1.0)
    );
    assert_eq!(value(&before, "deploytime_events_stored_total", &[]), None);
    assert!(
        value(
            &before,
            "deploytime_db_pool_connections",
            &[("state", "in_use")]
        )
        .is_some()
    );
    assert!(value(&before, "deploytime_db_pool_max_connections", &[]).unwrap() >= 1.0);

    let start = json!({"component": "api", "phase": "start",
        "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11",
        "timestamp": "2026-01-01T00:00:00Z"});
    app.store(start.clone()).await;
    app.store(
        json!({"component": "api", "phase": "finish", "status": "success",
        "timestamp": "2026-01-01T00:00:30Z"}),
    )
    .await;
    // A replay answers 200 and is not counted again.
    assert_eq!(app.post_json(start).await.status(), 200);
    assert_eq!(app.get("/api/v1/deployments").await.status(), 200);
    assert_eq!(app.get("/no/such/page").await.status(), 404);

    let after = scrape(&app).await;
    let stored = |phase| {
        value(
            &after,
            "deploytime_events_stored_total",
            &[("phase", phase)],
        )
    };
    assert_eq!(stored("start"), Some(1.0));
    assert_eq!(stored("finish"), Some(1.0));
    let requests = |method, route, status| {
        value(
            &after,
            "deploytime_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("POST", "/api/v1/events", "201"), Some(2.0));
    assert_eq!(requests("POST", "/api/v1/events", "200"), Some(1.0));
    assert_eq!(requests("GET", "/api/v1/deployments", "200"), Some(1.0));
    assert_eq!(requests("GET", "unmatched", "404"), Some(1.0));
    assert_eq!(requests("GET", "/metrics", "200"), Some(1.0));
    let latency = [
        ("method", "POST"),
        ("route", "/api/v1/events"),
        ("status", "201"),
    ];
    assert_eq!(
        value(&after, "deploytime_http_request_duration_seconds", &latency),
        Some(2.0)
    );

    let deploy = [
        ("component", "api"),
        ("environment", "production"),
        ("state", "succeeded"),
    ];
    let histogram = "deploytime_deploy_duration_seconds";
    assert_eq!(value(&after, histogram, &deploy), Some(1.0));
    assert_eq!(bucket(&after, histogram, &deploy, 10.0), 0.0);
    assert_eq!(bucket(&after, histogram, &deploy, 30.0), 1.0);
    assert_eq!(
        value(&after, "deploytime_deploy_duration_seconds_sum", &deploy),
        Some(30.0)
    );
}

async fn request_ids_are_echoed_or_made(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let echoed = app
        .client
        .get(app.url("/api/v1/deployments"))
        .header("x-request-id", "build-42.step-7")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "build-42.step-7");
    // Errors carry it too.
    let problem = app
        .client
        .get(app.url("/api/v1/deployments?limit=0"))
        .header("x-request-id", "bad-limit")
        .send()
        .await
        .unwrap();
    assert_eq!(problem.status(), 422);
    assert_eq!(problem.headers()["x-request-id"], "bad-limit");
    // Missing or unfit for a log line: the server makes one.
    for given in [
        None,
        Some("has spaces and \"quotes\""),
        Some(&*"x".repeat(200)),
    ] {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(id) = given {
            request = request.header("x-request-id", id);
        }
        let response = request.send().await.unwrap();
        let made = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
    }
}

backend_tests!(metrics_parse_and_count, request_ids_are_echoed_or_made);

/// Runs the real binary with debug logging, calls it with good and bad tokens,
/// and searches everything it wrote for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs() {
    let binary = env!("CARGO_BIN_EXE_deploytime-server");
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("deploytime.db");
    let database = database.to_str().unwrap();
    let admin = "container-admin-token-0123456789abcdef-secret";
    let wrong = "dt_this-token-was-never-issued-0123456789abcdefg";

    let created = Command::new(binary)
        .args(["token", "create", "--role", "ingest", "--name", "ci"])
        .args(["--database-url", database])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let ingest = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(ingest.starts_with("dt_"), "{ingest}");
    let creation_log = String::from_utf8(created.stderr).unwrap();
    assert!(creation_log.contains("shown this once"), "{creation_log}");
    assert!(!creation_log.contains(&ingest));

    let mut server = Command::new(binary)
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .args(["--database-url", database])
        .env("RUST_LOG", "debug")
        .env("DEPLOYTIME_ADMIN_TOKEN", admin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = server.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log: Vec<String> = Vec::new();
    let port = loop {
        let line = lines_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the server logs that it listens");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        log.push(line);
        if parsed["message"] == "deploytime-server listening" {
            break parsed["port"].as_u64().unwrap();
        }
    };

    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let stored = client
        .post(url("/api/v1/events"))
        .bearer_auth(&ingest)
        .header("x-request-id", "log-test-store")
        .json(&json!({"component": "api", "phase": "start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 201);
    let listed = client
        .get(url("/api/v1/deployments"))
        .bearer_auth(admin)
        .header("x-request-id", "log-test-list")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    for token in [wrong, ingest.as_str()] {
        // A wrong token, and a right one where its role does not reach.
        let refused = client
            .get(url("/api/v1/deployments"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(matches!(refused.status().as_u16(), 401 | 403));
        let body = refused.text().await.unwrap();
        assert!(!body.contains(token), "{body}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    reader.join().unwrap();
    log.extend(lines_rx.try_iter());

    for secret in [admin, wrong, ingest.as_str()] {
        let leaked: Vec<&String> = log.iter().filter(|l| l.contains(secret)).collect();
        assert!(leaked.is_empty(), "a token is in the log: {leaked:?}");
    }
    // The log was really captured: each call has its one request line.
    let request_lines = |id: &str| -> Vec<serde_json::Value> {
        log.iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["message"] == "request" && l["span"]["request_id"] == id)
            .collect()
    };
    let store_lines = request_lines("log-test-store");
    assert_eq!(store_lines.len(), 1, "{log:#?}");
    assert_eq!(store_lines[0]["method"], "POST");
    assert_eq!(store_lines[0]["route"], "/api/v1/events");
    assert_eq!(store_lines[0]["status"], 201);
    assert!(store_lines[0]["latency_ms"].as_f64().is_some());
    let list_lines = request_lines("log-test-list");
    assert_eq!(list_lines.len(), 1, "{log:#?}");
    assert_eq!(list_lines[0]["route"], "/api/v1/deployments");
    assert_eq!(list_lines[0]["status"], 200);
    // The handler's own lines carry the request id as well.
    assert!(
        log.iter()
            .any(|l| l.contains("event stored") && l.contains("log-test-store")),
        "{log:#?}"
    );
}
