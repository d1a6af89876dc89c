//! The fourth DORA key and rollbacks: commits carried by store calls, the lead
//! time for changes computed from them (checked against values computed here
//! from the times the test sent), the commit a component last deployed, and
//! the change failure rate by its two definitions.

use chrono::{DateTime, Duration, Utc};
use deploytime_server::access::Role;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, error_fields, expect_problem};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn rfc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn commit(sha: &str, at: DateTime<Utc>) -> Value {
    json!({"sha": sha, "committed_at": rfc(at)})
}

/// Nearest rank, written out from its definition.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.max(1) - 1]
}

fn close(actual: &Value, expected: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!((actual - expected).abs() < 1e-6, "{actual} != {expected}");
}

/// A deployment of `component` from `start` for `seconds`, ending with
/// `status`, its commits sent on the start.
async fn deploy(
    app: &TestApp,
    component: &str,
    start: DateTime<Utc>,
    seconds: i64,
    status: &str,
    commits: Vec<Value>,
) -> String {
    let started = app
        .store(
            json!({"component": component, "phase": "start", "timestamp": rfc(start),
                      "commits": commits}),
        )
        .await;
    let id = started["deployment"]["id"].as_str().unwrap().to_owned();
    app.store(
        json!({"component": component, "phase": "finish", "status": status,
                     "deployment_id": id, "timestamp": rfc(start + Duration::seconds(seconds))}),
    )
    .await;
    id
}

async fn lead_time_is_per_commit_and_exact(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = t("2026-11-02T08:00:00Z");
    let h = |hours: i64| base + Duration::hours(hours);
    // api: two successful deployments and a failed one in between, whose
    // commits count only when a success ships them.
    deploy(
        &app,
        "api",
        h(10),
        600,
        "success",
        vec![commit("a000001", h(0)), commit("a000002", h(4))],
    )
    .await;
    deploy(
        &app,
        "api",
        h(30),
        300,
        "exit-1",
        vec![commit("a000003", h(20))],
    )
    .await;
    deploy(
        &app,
        "api",
        h(50),
        900,
        "success",
        // a000003 again (the failed deploy's), and a000001 shipped once more:
        // it counts at its first successful finish only.
        vec![
            commit("a000003", h(20)),
            commit("a000004", h(45)),
            commit("a000001", h(0)),
        ],
    )
    .await;
    // web: commits sent on the finish, and more of them on the start.
    let started = app
        .store(
            json!({"component": "web", "phase": "start", "timestamp": rfc(h(100)),
                      "commits": [commit("b000001", h(99))]}),
        )
        .await;
    let web = started["deployment"]["id"].as_str().unwrap().to_owned();
    app.store(
        json!({"component": "web", "phase": "finish", "status": "success",
                     "deployment_id": web, "timestamp": rfc(h(101)),
                     "commits": [commit("b000001", h(99)), commit("b000002", h(98))]}),
    )
    .await;

    // Written out here: commit → successful finish, in seconds.
    let finish_1 = (h(10) + Duration::seconds(600) - base).num_seconds() as f64;
    let finish_3 = (h(50) + Duration::seconds(900) - base).num_seconds() as f64;
    let hour = 3600.0;
    let mut api = [
        finish_1,               // a000001 (first shipped by deployment 1)
        finish_1 - 4.0 * hour,  // a000002
        finish_3 - 20.0 * hour, // a000003 (its failed deploy does not count)
        finish_3 - 45.0 * hour, // a000004
    ];
    api.sort_by(f64::total_cmp);
    let api_waiting = {
        let mut w = [10.0 * hour, 6.0 * hour, 30.0 * hour, 5.0 * hour];
        w.sort_by(f64::total_cmp);
        w
    };
    let query = "/api/v1/stats?since=2026-11-01T00:00:00Z&until=2026-11-10T00:00:00Z";
    let stats = app.get_json(query).await;
    let groups = stats["groups"].as_array().unwrap();
    let api_group = groups.iter().find(|g| g["component"] == "api").unwrap();
    let lead = &api_group["lead_time_seconds"];
    assert_eq!(lead["total"]["count"], 4, "{lead}");
    close(&lead["total"]["mean"], api.iter().sum::<f64>() / 4.0);
    close(&lead["total"]["median"], nearest_rank(&api, 50.0));
    close(&lead["total"]["p90"], nearest_rank(&api, 90.0));
    close(&lead["total"]["p95"], nearest_rank(&api, 95.0));
    assert_eq!(lead["waiting_to_deploy"]["count"], 4);
    close(
        &lead["waiting_to_deploy"]["median"],
        nearest_rank(&api_waiting, 50.0),
    );
    // Deploying, once per commit: 600 s for two commits, 900 s for two.
    close(
        &lead["deploying"]["mean"],
        (600.0 * 2.0 + 900.0 * 2.0) / 4.0,
    );
    // The median lead time (22,200 s) is under a day: elite.
    assert!(nearest_rank(&api, 50.0) < 86_400.0);
    assert_eq!(api_group["levels"]["lead_time"], "elite");

    let web_group = groups.iter().find(|g| g["component"] == "web").unwrap();
    let web_lead = &web_group["lead_time_seconds"]["total"];
    assert_eq!(
        web_lead["count"], 2,
        "the union of the start's and the finish's"
    );
    close(&web_lead["mean"], (2.0 * hour + 3.0 * hour) / 2.0);
    assert_eq!(web_group["levels"]["lead_time"], "elite");

    // The deployment shows its commits, the deployed one first.
    let detail = app.deployment(&web).await;
    let shas: Vec<&str> = detail["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha"].as_str().unwrap())
        .collect();
    assert_eq!(shas, ["b000001", "b000002"]);

    // A window that holds none of the deployments has no lead time.
    let empty = app
        .get_json(
            "/api/v1/stats?since=2026-12-01T00:00:00Z&until=2026-12-02T00:00:00Z&group_by=none",
        )
        .await;
    assert_eq!(empty["groups"][0]["lead_time_seconds"]["total"]["count"], 0);
    assert_eq!(empty["groups"][0]["levels"]["lead_time"], Value::Null);
    assert!(
        stats["definitions"]["lead_time_seconds"]
            .as_str()
            .is_some_and(|d| d.contains("first successful finish")),
        "{}",
        stats["definitions"]
    );
}

async fn the_deployed_commit_is_told_to_the_next_pipeline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let path = "/api/v1/commits/deployed?component=api&environment=staging";
    let none = expect_problem(app.get(path).await, 404).await;
    assert!(
        none["detail"]
            .as_str()
            .unwrap()
            .contains("no successful deployment"),
        "{none}"
    );

    let base = t("2026-11-02T08:00:00Z");
    let first = deploy_in(
        &app,
        "staging",
        base,
        "success",
        vec![
            commit("c000002", base - Duration::hours(1)),
            commit("c000001", base - Duration::hours(2)),
        ],
    )
    .await;
    let answer = app.get_json(path).await;
    assert_eq!(answer["commit"]["sha"], "c000002");
    assert_eq!(answer["deployment_id"], first.as_str());
    assert_eq!(answer["finished_at"], rfc(base + Duration::seconds(60)));

    // A later failure does not change it; a later success without commits says so.
    deploy_in(
        &app,
        "staging",
        base + Duration::hours(1),
        "exit-1",
        vec![commit("c000003", base)],
    )
    .await;
    assert_eq!(app.get_json(path).await["commit"]["sha"], "c000002");
    deploy_in(
        &app,
        "staging",
        base + Duration::hours(2),
        "success",
        vec![],
    )
    .await;
    let bare = expect_problem(app.get(path).await, 404).await;
    assert!(
        bare["detail"]
            .as_str()
            .unwrap()
            .contains("carried no commits"),
        "{bare}"
    );

    // An ingest token may ask, within its scope only.
    let token = app
        .create_token("pipeline", Role::Ingest, &["component=api"])
        .await;
    let client = reqwest::Client::new();
    let ask = |path: &str| client.get(app.url(path)).bearer_auth(&token).send();
    assert_eq!(
        ask(path).await.unwrap().status(),
        404,
        "admitted, and nothing new"
    );
    expect_problem(
        ask("/api/v1/commits/deployed?component=web&environment=staging")
            .await
            .unwrap(),
        403,
    )
    .await;
    let missing = expect_problem(ask("/api/v1/commits/deployed").await.unwrap(), 422).await;
    assert_eq!(error_fields(&missing), ["component"]);
}

async fn deploy_in(
    app: &TestApp,
    environment: &str,
    start: DateTime<Utc>,
    status: &str,
    commits: Vec<Value>,
) -> String {
    let started = app
        .store(
            json!({"component": "api", "environment": environment, "phase": "start",
                      "timestamp": rfc(start), "commits": commits}),
        )
        .await;
    let id = started["deployment"]["id"].as_str().unwrap().to_owned();
    app.store(
        json!({"component": "api", "environment": environment, "phase": "finish",
                     "status": status, "deployment_id": id,
                     "timestamp": rfc(start + Duration::seconds(60))}),
    )
    .await;
    id
}

async fn rollbacks_count_as_change_failures_when_asked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = t("2026-11-02T08:00:00Z");
    let h = |hours: i64| base + Duration::hours(hours);
    deploy(&app, "api", h(0), 60, "success", vec![]).await;
    // A rollback said on the finish only.
    let started = app
        .store(json!({"component": "api", "phase": "start", "timestamp": rfc(h(1))}))
        .await;
    let id = started["deployment"]["id"].as_str().unwrap().to_owned();
    let finished = app
        .store(
            json!({"component": "api", "phase": "finish", "status": "success",
                      "deployment_id": id, "timestamp": rfc(h(1) + Duration::seconds(30)),
                      "rollback": true}),
        )
        .await;
    assert_eq!(finished["deployment"]["rollback"], true);
    deploy(&app, "api", h(2), 60, "failed", vec![]).await;
    deploy(&app, "api", h(3), 60, "success", vec![]).await;

    let window = "since=2026-11-01T00:00:00Z&until=2026-11-10T00:00:00Z&group_by=none";
    let plain = app.get_json(&format!("/api/v1/stats?{window}")).await;
    // 4 finished, 1 failed.
    close(&plain["groups"][0]["change_failure_rate"], 1.0 / 4.0);
    assert_eq!(plain["groups"][0]["rollbacks"], 1);
    assert_eq!(plain["definitions"]["change_failure"], "failed");
    let with_rollbacks = app
        .get_json(&format!(
            "/api/v1/stats?{window}&change_failure=failed_or_rolled_back"
        ))
        .await;
    // The first deployment was rolled back: 2 of 4.
    close(
        &with_rollbacks["groups"][0]["change_failure_rate"],
        2.0 / 4.0,
    );
    assert_eq!(
        with_rollbacks["definitions"]["change_failure"],
        "failed_or_rolled_back"
    );
    assert!(
        with_rollbacks["definitions"]["change_failure_rate"]
            .as_str()
            .unwrap()
            .contains("rollback")
    );
    let bad = expect_problem(
        app.get(&format!("/api/v1/stats?{window}&change_failure=rollbacks"))
            .await,
        422,
    )
    .await;
    assert_eq!(error_fields(&bad), ["change_failure"]);
}

async fn bad_commits_are_refused_and_nothing_is_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let problem = expect_problem(
        app.post_json(json!({"component": "api", "phase": "start",
            "commits": [{"sha": "not-hex", "committed_at": "2026-11-02T08:00:00Z"},
                        {"sha": "abcdef0", "committed_at": "2026-11-02"}],
            "rollback": "yes"}))
            .await,
        422,
    )
    .await;
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(
        fields,
        ["commits[0].sha", "commits[1].committed_at", "rollback"]
    );
    let too_many: Vec<Value> = (0..501)
        .map(|i| commit(&format!("{i:07x}"), t("2026-11-02T08:00:00Z")))
        .collect();
    let problem = expect_problem(
        app.post_json(json!({"component": "api", "phase": "start", "commits": too_many}))
            .await,
        422,
    )
    .await;
    assert_eq!(error_fields(&problem), ["commits"]);
    assert!(app.all_deployments().await.is_empty());

    // A retry with the same commits is the same call; with others, a conflict.
    let event_id = "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11";
    let body = json!({"component": "api", "phase": "start", "event_id": event_id,
                      "commits": [commit("abcdef0", t("2026-11-02T08:00:00Z"))]});
    app.store(body.clone()).await;
    assert_eq!(app.post_json(body.clone()).await.status(), 200);
    let mut other = body;
    other["commits"][0]["sha"] = json!("abcdef1");
    expect_problem(app.post_json(other).await, 409).await;
    let only = app.all_deployments().await;
    assert_eq!(only.len(), 1);
    let detail = app.deployment(only[0]["id"].as_str().unwrap()).await;
    assert_eq!(detail["commits"].as_array().unwrap().len(), 1);
}

async fn the_dashboard_shows_lead_time_beside_the_other_keys(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = Utc::now();
    // Committed three hours before a deploy that started two hours ago.
    deploy(
        &app,
        "api",
        now - Duration::hours(2),
        600,
        "success",
        vec![commit("d000001", now - Duration::hours(5))],
    )
    .await;
    deploy(&app, "web", now - Duration::hours(1), 60, "success", vec![]).await;
    let page = scraper::Html::parse_document(&app.get("/").await.text().await.unwrap());
    let headings = crate::helpers::texts(&page, "#components-table thead th");
    let lead = headings.iter().position(|h| h == "Lead time").unwrap();
    let rows = crate::helpers::cells(&page, "#components-table");
    // 5 h 10 min: elite (under a day); web shipped no commits: no figure.
    assert!(rows[0][lead].ends_with("elite"), "{:?}", rows[0]);
    assert_eq!(rows[1][lead], "-", "{:?}", rows[1]);
    let cards = crate::helpers::texts(&page, ".card");
    assert!(
        cards
            .iter()
            .any(|c| c.contains("Lead time for changes") && c.contains("elite")),
        "{cards:?}"
    );
}

backend_tests!(
    the_dashboard_shows_lead_time_beside_the_other_keys,
    lead_time_is_per_commit_and_exact,
    the_deployed_commit_is_told_to_the_next_pipeline,
    rollbacks_count_as_change_failures_when_asked,
    bad_commits_are_refused_and_nothing_is_stored,
);
