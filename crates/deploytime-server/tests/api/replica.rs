//! Reports read on a MariaDB read replica (`--read-database-url`), against a
//! real primary and a real GTID replica of it (`.ci/mariadb-replica.sh`):
//! reports come from the replica, a read that must be current from the
//! primary, nothing is written to the replica, and a replica that is down or
//! too far behind is passed over for the primary, as `/readyz` and
//! `/metrics` say.
//!
//! The tests that pause the replica's SQL thread take turns (`PAUSES`): the
//! replica is shared by every test of this file.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

use deploytime_server::db::DatabaseUrl;
use deploytime_server::testing::{ReplicaPair, mysql_replica_pair};

use crate::helpers::{Backend, TestApp, TestDatabase};

/// Tests that stop replication take turns, and so do those that need it
/// running to tell what comes from where.
static PAUSES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a test waits for the replica to catch up at most.
const CATCH_UP: Duration = Duration::from_secs(30);

fn connect(url: &url::Url) -> MysqlConnection {
    MysqlConnection::establish(url.as_str()).unwrap()
}

#[derive(QueryableByName)]
struct TextValue {
    #[diesel(sql_type = Nullable<Text>)]
    value: Option<String>,
}

#[derive(QueryableByName)]
struct IntValue {
    #[diesel(sql_type = Nullable<Integer>)]
    value: Option<i32>,
}

fn text(conn: &mut MysqlConnection, sql: &str) -> String {
    diesel::sql_query(sql)
        .get_result::<TextValue>(conn)
        .unwrap()
        .value
        .unwrap_or_default()
}

/// A database of its own on the replica pair's primary, a server on it that
/// reads reports on the replica's copy, and the pair.
async fn spawn_on_replica(
    configure: impl FnOnce(&mut deploytime_server::settings::Settings),
) -> (TestApp, ReplicaPair) {
    let pair = mysql_replica_pair().unwrap();
    let database = TestDatabase::create_mysql_on(&pair.primary).unwrap();
    let replica_url = same_database_on(&database, &pair.replica);
    let app = TestApp::start_with(database, |settings| {
        settings.read_database_url = Some(replica_url);
        configure(settings);
    });
    (app, pair)
}

/// The test's database as seen through `server` (its name, another host).
fn same_database_on(database: &TestDatabase, server: &url::Url) -> DatabaseUrl {
    let DatabaseUrl::Mysql(primary) = &database.url else {
        panic!("the replica tests run on MySQL");
    };
    let primary = url::Url::parse(primary).unwrap();
    let mut url = server.clone();
    url.set_path(primary.path());
    DatabaseUrl::parse(url.as_str()).unwrap()
}

/// Waits until the replica has applied everything the primary has written so
/// far (`MASTER_GTID_WAIT`, bounded), then until the server reads reports on
/// it again (a replica that missed the tables a moment ago was taken for
/// down; `/readyz` looks at it afresh).
async fn caught_up(app: &TestApp, pair: &ReplicaPair) {
    let pair = pair.clone();
    tokio::task::spawn_blocking(move || {
        let position = text(
            &mut connect(&pair.primary),
            "SELECT @@gtid_binlog_pos AS value",
        );
        let waited = diesel::sql_query(format!(
            "SELECT MASTER_GTID_WAIT('{position}', {}) AS value",
            CATCH_UP.as_secs()
        ))
        .get_result::<IntValue>(&mut connect(&pair.replica))
        .unwrap()
        .value;
        assert_eq!(
            waited,
            Some(0),
            "the replica did not reach {position} within {CATCH_UP:?}"
        );
    })
    .await
    .unwrap();
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let ready = app.get_json("/readyz").await;
        if ready["read_replica"]["serving_reports"] == true && ready["status"] == "ready" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server does not read on the replica: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the replica's SQL thread until dropped (then starts replication
/// again, whatever happened to the test).
struct PausedReplication(url::Url);

impl PausedReplication {
    fn pause(pair: &ReplicaPair) -> Self {
        connect(&pair.replica)
            .batch_execute("STOP REPLICA SQL_THREAD")
            .unwrap();
        PausedReplication(pair.replica.clone())
    }
}

impl Drop for PausedReplication {
    fn drop(&mut self) {
        if let Ok(mut conn) = MysqlConnection::establish(self.0.as_str()) {
            let _ = conn.batch_execute("START REPLICA");
        }
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn metric(scrape: &Scrape, name: &str) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .map(|s| match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            _ => panic!("{name} is not a single value"),
        })
}

/// Stores a start event and returns the deployment's id and its `Location`.
async fn start(app: &TestApp, component: &str) -> (String, String) {
    let response = app
        .post_json(json!({"component": component, "phase": "start"}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["deployment"]["id"].as_str().unwrap().to_owned();
    (id, location)
}

fn components_listed(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["component"].as_str().unwrap().to_owned())
        .collect()
}

fn ids_listed(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

fn stats_path() -> String {
    let now = chrono::Utc::now();
    let since =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until =
        (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!("/api/v1/stats?group_by=none&since={since}&until={until}")
}

fn deployments_counted(stats: &Value) -> u64 {
    stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["deployments"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_come_from_the_replica_and_a_fetch_by_id_from_the_primary() {
    let _turn = PAUSES.lock().await;
    let (app, pair) = spawn_on_replica(|_| {}).await;
    let (first, _) = start(&app, "api").await;
    caught_up(&app, &pair).await;
    assert_eq!(
        ids_listed(&app.get_json("/api/v1/deployments").await),
        [first.as_str()]
    );

    let paused = PausedReplication::pause(&pair);
    let (second, location) = start(&app, "web").await;
    assert_eq!(location, format!("/api/v1/deployments/{second}"));

    // What must be current is read on the primary.
    let fetched = app.get_json(&location).await;
    assert_eq!(fetched["id"], second.as_str());
    let page = app.get(&format!("/deployments/{second}")).await;
    assert_eq!(
        page.status(),
        200,
        "the dashboard's page of a new deployment"
    );

    // The reports are the replica's, which has not applied it.
    assert_eq!(
        ids_listed(&app.get_json("/api/v1/deployments").await),
        [first.as_str()]
    );
    assert_eq!(
        components_listed(&app.get_json("/api/v1/components").await),
        ["api"]
    );
    assert_eq!(deployments_counted(&app.get_json(&stats_path()).await), 1);
    let events = app.get_json("/api/v1/events").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    let csv = app.get("/api/v1/deployments?format=csv").await;
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.contains(&first) && !csv.contains(&second), "{csv}");
    let overview = app.get("/").await.text().await.unwrap();
    assert!(overview.contains(r#"<option value="api">"#), "{overview}");
    assert!(!overview.contains(r#"<option value="web">"#), "{overview}");

    let scraped = scrape(&app).await;
    assert_eq!(metric(&scraped, "deploytime_read_replica_up"), Some(1.0));
    assert_eq!(
        metric(&scraped, "deploytime_read_replica_serving_reports"),
        Some(1.0)
    );
    assert_eq!(
        metric(&scraped, "deploytime_read_replica_fallbacks_total"),
        Some(0.0)
    );
    let lag = metric(&scraped, "deploytime_read_replica_lag_seconds").unwrap();
    assert!(lag.is_finite() && lag >= 0.0, "lag {lag} while stopped");
    // Stopped replication is seen (by the next look at the replica), and
    // within the bound it is not yet a reason to leave the replica.
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let ready = app.get_json("/readyz").await;
        assert_eq!(ready["status"], "ready", "{ready}");
        assert_eq!(ready["read_replica"]["serving_reports"], true, "{ready}");
        let problem = ready["read_replica"]["problem"]
            .as_str()
            .unwrap_or_default();
        if problem.contains("SQL thread: No") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stopped replication not seen: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Replication resumes: the report catches up.
    drop(paused);
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let listed = ids_listed(&app.get_json("/api/v1/deployments").await);
        if listed.len() == 2 {
            assert_eq!(listed, [second.as_str(), first.as_str()]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never caught up: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scraped = scrape(&app).await;
    assert_eq!(
        metric(&scraped, "deploytime_read_replica_fallbacks_total"),
        Some(0.0)
    );
    let lag = metric(&scraped, "deploytime_read_replica_lag_seconds").unwrap();
    assert!(lag.is_finite() && lag >= 0.0, "{lag}");
}

/// The GTIDs the replica's binary log holds of its own (server id 2): with
/// `log_slave_updates`, the primary's transactions are logged there under
/// the primary's server id, and anything written on the replica under its own.
fn replica_own_writes(conn: &mut MysqlConnection) -> Vec<String> {
    let own = text(conn, "SELECT @@server_id AS value");
    text(conn, "SELECT @@gtid_binlog_state AS value")
        .split(',')
        .map(str::trim)
        .filter(|gtid| gtid.split('-').nth(1) == Some(own.as_str()))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_to_the_replica() {
    let _turn = PAUSES.lock().await;
    let (app, pair) = spawn_on_replica(|_| {}).await;
    let before = tokio::task::spawn_blocking({
        let replica = pair.replica.clone();
        move || replica_own_writes(&mut connect(&replica))
    })
    .await
    .unwrap();

    // Every kind of call: stores, a correction, a deletion, every report.
    let (id, _) = start(&app, "api").await;
    app.store(
        json!({"component": "api", "phase": "finish", "status": "success", "deployment_id": id}),
    )
    .await;
    let (gone, _) = start(&app, "web").await;
    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/deployments/{gone}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    caught_up(&app, &pair).await;
    for path in [
        "/api/v1/deployments",
        "/api/v1/events",
        "/api/v1/components",
        "/api/v1/deployments?format=csv",
        "/",
        "/component?component=api",
        "/metrics",
        "/readyz",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    assert_eq!(app.get(&stats_path()).await.status(), 200);

    // Even a statement that would write, sent the way reports are, is
    // refused by the replica: its sessions are read-only.
    let refused = app
        .db
        .report(|conn| diesel::sql_query("DELETE FROM __diesel_schema_migrations").execute(conn))
        .await
        .unwrap_err();
    let cause = format!("{:?}", refused);
    assert!(cause.contains("READ ONLY"), "{cause}");

    let after = tokio::task::spawn_blocking({
        let replica = pair.replica.clone();
        move || replica_own_writes(&mut connect(&replica))
    })
    .await
    .unwrap();
    assert_eq!(before, after, "the replica wrote transactions of its own");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_too_far_behind_is_passed_over_for_the_primary() {
    let _turn = PAUSES.lock().await;
    let (app, pair) = spawn_on_replica(|settings| {
        settings.max_replica_lag = Duration::from_secs(1);
    })
    .await;
    let (first, _) = start(&app, "api").await;
    caught_up(&app, &pair).await;

    let paused = PausedReplication::pause(&pair);
    let (second, _) = start(&app, "web").await;
    // Stopped for longer than the bound: reports go to the primary, which
    // has the new deployment; /readyz says why.
    let deadline = Instant::now() + CATCH_UP;
    let ready = loop {
        let ready = app.get_json("/readyz").await;
        if ready["status"] == "degraded" {
            break ready;
        }
        assert!(Instant::now() < deadline, "never degraded: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["read_replica"]["up"], true, "{ready}");
    assert_eq!(ready["read_replica"]["serving_reports"], false, "{ready}");
    assert!(
        ready["read_replica"]["lag_seconds"].as_f64().unwrap() > 1.0,
        "{ready}"
    );
    assert_eq!(
        ids_listed(&app.get_json("/api/v1/deployments").await),
        [second.as_str(), first.as_str()]
    );
    let scraped = scrape(&app).await;
    assert_eq!(
        metric(&scraped, "deploytime_read_replica_serving_reports"),
        Some(0.0)
    );
    assert!(metric(&scraped, "deploytime_read_replica_fallbacks_total").unwrap() >= 1.0);
    assert!(metric(&scraped, "deploytime_read_replica_lag_seconds").unwrap() > 1.0);

    // Back in bounds: ready again, reports on the replica.
    drop(paused);
    caught_up(&app, &pair).await;
}

/// A port on which nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_is_down_makes_reports_read_the_primary() {
    let database = TestDatabase::create(Backend::Mysql).unwrap();
    let mut down = deploytime_server::testing::mysql_admin_url().unwrap();
    down.set_port(Some(closed_port())).unwrap();
    let down = same_database_on(&database, &down);
    // The server starts all the same.
    let app = TestApp::start_with(database, |settings| {
        settings.read_database_url = Some(down);
    });
    let (id, _) = start(&app, "api").await;
    assert_eq!(ids_listed(&app.get_json("/api/v1/deployments").await), [id]);
    assert_eq!(
        components_listed(&app.get_json("/api/v1/components").await),
        ["api"]
    );
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["read_replica"]["up"], false, "{ready}");
    assert_eq!(ready["read_replica"]["lag_seconds"], Value::Null, "{ready}");
    assert!(
        ready["read_replica"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("the read replica does not answer")),
        "{ready}"
    );
    let scraped = scrape(&app).await;
    assert_eq!(metric(&scraped, "deploytime_read_replica_up"), Some(0.0));
    assert!(
        metric(&scraped, "deploytime_read_replica_lag_seconds")
            .unwrap()
            .is_nan()
    );
    assert!(metric(&scraped, "deploytime_read_replica_fallbacks_total").unwrap() >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_user_without_the_replication_privilege_is_told_not_fatal() {
    let _turn = PAUSES.lock().await;
    let pair = mysql_replica_pair().unwrap();
    let database = TestDatabase::create_mysql_on(&pair.primary).unwrap();
    let reader = same_database_on(&database, &pair.reader);
    let app = TestApp::start_with(database, |settings| {
        settings.read_database_url = Some(reader);
    });
    let (id, _) = start(&app, "api").await;
    // Without the lag, the server cannot wait for it: poll the report.
    let deadline = Instant::now() + CATCH_UP;
    while ids_listed(&app.get_json("/api/v1/deployments").await) != [id.as_str()] {
        assert!(Instant::now() < deadline, "the replica never had {id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = app.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["read_replica"]["up"], true, "{ready}");
    assert_eq!(ready["read_replica"]["serving_reports"], true, "{ready}");
    assert_eq!(ready["read_replica"]["lag_seconds"], Value::Null, "{ready}");
    assert!(
        ready["read_replica"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("REPLICATION CLIENT")),
        "{ready}"
    );
    let scraped = scrape(&app).await;
    assert!(
        metric(&scraped, "deploytime_read_replica_lag_seconds")
            .unwrap()
            .is_nan()
    );
    assert_eq!(metric(&scraped, "deploytime_read_replica_up"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_the_replica_take_a_slot_of_the_bound_on_database_work() {
    let _turn = PAUSES.lock().await;
    let (app, pair) = spawn_on_replica(|settings| settings.max_db_work = 1).await;
    caught_up(&app, &pair).await;
    // The one slot is taken (on the primary): a report is refused at once,
    // although the replica has connections to spare.
    let release = app.hold_database().await;
    let started = Instant::now();
    let problem = crate::helpers::expect_problem(app.get("/api/v1/deployments").await, 503).await;
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
    let scraped = scrape(&app).await;
    assert_eq!(
        metric(&scraped, "deploytime_read_replica_fallbacks_total"),
        Some(0.0)
    );
}
