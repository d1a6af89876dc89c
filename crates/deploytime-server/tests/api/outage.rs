//! The database going away and coming back: 503 problems meanwhile, quickly, and
//! recovery without a restart. Also the limits that keep an overloaded server
//! answering: the bound on database work and the request timeout.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestDatabase, expect_problem};

/// How long requests wait for a connection in these tests.
const DB_TIMEOUT: Duration = Duration::from_millis(300);

/// The server's answers while the database is unreachable: 503 problems with
/// `Retry-After`, each within a bound that the short database timeout sets.
async fn expect_unavailable(app: &TestApp) {
    for path in ["/readyz", "/api/v1/deployments"] {
        let started = Instant::now();
        let response = app.get(path).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
        assert_eq!(response.headers()["retry-after"], "1", "{path}");
        expect_problem(response, 503).await;
    }
    let response = app
        .post_json(json!({"component": "api", "phase": "start"}))
        .await;
    expect_problem(response, 503).await;
    // Under load: every concurrent call is refused the same way, none hangs.
    let started = Instant::now();
    let calls = (0..24).map(|i| async move {
        if i % 2 == 0 {
            app.post_json(json!({"component": "api", "phase": "start"}))
                .await
        } else {
            app.get("/api/v1/components").await
        }
    });
    for response in futures_util::future::join_all(calls).await {
        expect_problem(response, 503).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// Readiness until it answers 200, within `limit`: the pool reconnects on its own.
/// After the database is back: ready again without a restart, the deployment
/// stored before the outage is still there, and a new call closes it.
async fn expect_recovered(app: &TestApp, before: &Value) {
    wait_ready(app, Duration::from_secs(10)).await;
    let items = app.all_deployments().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], before["deployment"]["id"]);
    app.store(json!({"component": "api", "phase": "finish", "status": "success"}))
        .await;
}

async fn wait_ready(app: &TestApp, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if app.get("/readyz").await.status() == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not ready {limit:?} after the database came back"
        );
        // Each failed probe already waited DB_TIMEOUT for a connection.
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_gone_and_back() {
    let (database, data) = TestDatabase::sqlite_in_data_dir().unwrap();
    let app = TestApp::start_with(database, |s| s.db_timeout = DB_TIMEOUT);
    let before = app
        .store(json!({"component": "api", "phase": "start"}))
        .await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    let away = data.with_file_name("away");
    std::fs::rename(&data, &away).unwrap();
    expect_unavailable(&app).await;

    std::fs::rename(&away, &data).unwrap();
    expect_recovered(&app, &before).await;
}

#[cfg(feature = "mysql")]
mod proxy {
    //! A TCP proxy in front of MySQL that the test can cut and restore, like a
    //! database server restarting or a network partition.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Mutex;
    use tokio::task::AbortHandle;

    pub struct Proxy {
        pub port: u16,
        open: Arc<AtomicBool>,
        links: Arc<Mutex<Vec<AbortHandle>>>,
        accept: AbortHandle,
    }

    impl Proxy {
        pub async fn start(upstream: String) -> Proxy {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let open = Arc::new(AtomicBool::new(true));
            let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
            let (accept_open, accept_links) = (open.clone(), links.clone());
            let accept = tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !accept_open.load(Ordering::SeqCst) {
                        drop(inbound); // refused: the client sees the connection close
                        continue;
                    }
                    let upstream = upstream.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    accept_links.lock().await.push(link.abort_handle());
                }
            })
            .abort_handle();
            Proxy {
                port,
                open,
                links,
                accept,
            }
        }

        /// Drops every open connection and refuses new ones.
        pub async fn cut(&self) {
            self.open.store(false, Ordering::SeqCst);
            for link in self.links.lock().await.drain(..) {
                link.abort();
            }
        }

        pub fn restore(&self) {
            self.open.store(true, Ordering::SeqCst);
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.accept.abort();
        }
    }
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_connection_cut_and_restored() {
    use deploytime_server::db::DatabaseUrl;

    let database = TestDatabase::create(Backend::Mysql).unwrap();
    let direct = url::Url::parse(&match &database.url {
        DatabaseUrl::Mysql(raw) => raw.clone(),
        DatabaseUrl::Sqlite(_) => unreachable!(),
    })
    .unwrap();
    let upstream = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(3306)
    );
    let proxy = proxy::Proxy::start(upstream).await;
    let mut through_proxy = direct.clone();
    through_proxy.set_host(Some("127.0.0.1")).unwrap();
    through_proxy.set_port(Some(proxy.port)).unwrap();
    let app = TestApp::start_with(database, |s| {
        s.db_timeout = DB_TIMEOUT;
        s.database_url = DatabaseUrl::parse(through_proxy.as_str()).unwrap();
    });
    let before = app
        .store(json!({"component": "api", "phase": "start"}))
        .await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.cut().await;
    expect_unavailable(&app).await;

    proxy.restore();
    expect_recovered(&app, &before).await;
}

async fn saturated_database_work_is_503_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.max_db_work = 1).await;
    let release = app.hold_database().await;
    let started = Instant::now();
    let problem = expect_problem(app.get("/api/v1/deployments").await, 503).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("busy"),
        "{problem}"
    );
    drop(release);
    app.db.wait_until_idle().await;
    assert_eq!(app.get("/api/v1/deployments").await.status(), 200);
}

async fn slow_requests_time_out_and_store_nothing(backend: Backend) {
    const ADMIN: &str = "timeout-test-admin-token-0123456789";
    let app = TestApp::spawn_with(backend, |s| {
        s.pool_size = 1;
        s.db_timeout = Duration::from_secs(30);
        s.request_timeout = Duration::from_millis(300);
        s.admin_token = Some(deploytime_server::access::Secret::new(ADMIN));
    })
    .await;
    // The only connection is busy: the store call waits for it past the timeout.
    let release = app.hold_database().await;
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .bearer_auth(ADMIN)
        .json(&json!({"component": "api", "phase": "start"}))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    let problem = expect_problem(response, 503).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("took longer than"),
        "{problem}"
    );
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Once the connection is free, the abandoned call is skipped, not run late.
    drop(release);
    app.db.wait_until_idle().await;
    let response = app
        .client
        .get(app.url("/api/v1/deployments"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "{body}");
}

backend_tests!(
    saturated_database_work_is_503_at_once,
    slow_requests_time_out_and_store_nothing,
);
