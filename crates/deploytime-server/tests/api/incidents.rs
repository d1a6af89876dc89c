//! Incidents over HTTP: opening and resolving, idempotent retries, every bad
//! input refused with a problem naming its field (and nothing stored), cause
//! deployments, scopes, listing by pages, and the incident-based time to
//! restore in the statistics, checked against figures computed here from the
//! times sent.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use deploytime_server::access::Role;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, at, error_fields, expect_problem};

const INCIDENTS: &str = "/api/v1/incidents";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn rfc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn post(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(INCIDENTS))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn patch(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("{INCIDENTS}/{id}")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Opens an incident that must be accepted; returns its view.
async fn open(app: &TestApp, body: Value) -> Value {
    let response = post(app, body.clone()).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "opening {body} answered {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Every incident stored, newest start first.
async fn all_incidents(app: &TestApp) -> Vec<Value> {
    app.get_json(&format!("{INCIDENTS}?limit=1000")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn deploy(app: &TestApp, component: &str, environment: &str, start: &str) -> String {
    let stored = app
        .store(json!({"component": component, "environment": environment,
                      "phase": "start", "timestamp": start}))
        .await;
    stored["deployment"]["id"].as_str().unwrap().to_owned()
}

async fn open_and_resolve(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = post(
        &app,
        json!({"component": "api", "environment": "staging",
               "started_at": "2026-10-01T10:00:00+02:00", "title": "checkout answers 502"}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let opened: Value = response.json().await.unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("{INCIDENTS}/{id}"));
    assert_eq!(opened["state"], "open");
    assert_eq!(opened["component"], "api");
    assert_eq!(opened["environment"], "staging");
    assert_eq!(opened["started_at"], "2026-10-01T08:00:00.000000Z");
    assert_eq!(opened["resolved_at"], Value::Null);
    assert_eq!(opened["time_to_restore_seconds"], Value::Null);
    assert_eq!(app.get_json(&location).await, opened);
    assert_eq!(open_gauge(&app).await, 1);

    // 1 h 2 min 3.5 s later.
    let resolved_at = "2026-10-01T09:02:03.5Z";
    let response = patch(&app, &id, json!({"resolved_at": resolved_at})).await;
    assert_eq!(response.status(), 200);
    let resolved: Value = response.json().await.unwrap();
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["resolved_at"], "2026-10-01T09:02:03.500000Z");
    assert_eq!(resolved["time_to_restore_seconds"], 3_723.5);
    assert_eq!(resolved["title"], "checkout answers 502");

    // The same resolution again is a retry; another time is a conflict; "now"
    // keeps the time it has.
    let again = patch(
        &app,
        &id,
        json!({"resolved_at": "2026-10-01T11:02:03.500+02:00"}),
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), resolved);
    let other = patch(&app, &id, json!({"resolved_at": "2026-10-01T09:02:04Z"})).await;
    let problem = expect_problem(other, 409).await;
    assert_eq!(problem["type"], "/problems/conflict");
    let now = patch(&app, &id, json!({"resolved": true})).await;
    assert_eq!(now.status(), 200);
    assert_eq!(now.json::<Value>().await.unwrap(), resolved);
    assert_eq!(app.get_json(&location).await, resolved);

    // A correction of the title and cause leaves the resolution as it is.
    let cause = deploy(&app, "api", "staging", "2026-10-01T07:55:00Z").await;
    let corrected = patch(
        &app,
        &id,
        json!({"title": "a bad config in 1.4.2", "cause_deployment_id": cause, "summary": "rolled back"}),
    )
    .await;
    assert_eq!(corrected.status(), 200);
    let corrected: Value = corrected.json().await.unwrap();
    assert_eq!(corrected["title"], "a bad config in 1.4.2");
    assert_eq!(corrected["summary"], "rolled back");
    assert_eq!(corrected["cause_deployment_id"], cause.as_str());
    assert_eq!(corrected["resolved_at"], resolved["resolved_at"]);
    let cleared = patch(&app, &id, json!({"summary": null})).await;
    assert_eq!(
        cleared.json::<Value>().await.unwrap()["summary"],
        Value::Null
    );

    // "resolved": true resolves an open incident now.
    let before = Utc::now() - Duration::seconds(1);
    let second = open(&app, json!({"component": "api"})).await;
    assert_eq!(
        second["environment"], "production",
        "the default environment"
    );
    let started = t(second["started_at"].as_str().unwrap());
    assert!(started >= before && started <= Utc::now(), "started now");
    let id = second["id"].as_str().unwrap();
    let resolved = patch(&app, id, json!({"resolved": true})).await;
    let resolved: Value = resolved.json().await.unwrap();
    assert_eq!(resolved["state"], "resolved");
    assert!(t(resolved["resolved_at"].as_str().unwrap()) >= started);
    assert_eq!(all_incidents(&app).await.len(), 2);
    assert_eq!(open_gauge(&app).await, 0);
}

/// `deploytime_incidents_open` as `/metrics` shows it.
async fn open_gauge(app: &TestApp) -> i64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("deploytime_incidents_open "))
        .unwrap_or_else(|| panic!("no deploytime_incidents_open in {text}"))
        .parse()
        .unwrap()
}

async fn retries_and_conflicts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = Uuid::new_v4().to_string();
    let body = json!({"incident_id": id, "component": "api", "title": "down",
                      "started_at": "2026-10-01T10:00:00Z"});
    let first = open(&app, body.clone()).await;
    assert_eq!(first["id"], id.as_str());
    let retry = post(&app, body.clone()).await;
    assert_eq!(retry.status(), 200, "a retry answers the original");
    assert_eq!(
        retry.headers()["location"].to_str().unwrap(),
        format!("{INCIDENTS}/{id}")
    );
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    // Resolved since: a late retry of the opening answers it as it now is.
    let resolved = patch(&app, &id, json!({"resolved_at": "2026-10-01T10:30:00Z"})).await;
    let resolved: Value = resolved.json().await.unwrap();
    let late = post(&app, body).await;
    assert_eq!(late.status(), 200);
    assert_eq!(late.json::<Value>().await.unwrap(), resolved);
    // Other content under the same id.
    for other in [
        json!({"incident_id": id, "component": "api", "title": "up",
               "started_at": "2026-10-01T10:00:00Z"}),
        json!({"incident_id": id, "component": "web", "title": "down",
               "started_at": "2026-10-01T10:00:00Z"}),
        json!({"incident_id": id, "component": "api", "title": "down"}),
    ] {
        let problem = expect_problem(post(&app, other.clone()).await, 409).await;
        assert_eq!(problem["type"], "/problems/conflict", "{other}");
    }
    // A retry without started_at is the same call, whenever it comes.
    let defaulted = json!({"incident_id": Uuid::new_v4().to_string(), "component": "api"});
    let first = open(&app, defaulted.clone()).await;
    let retry = post(&app, defaulted).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(all_incidents(&app).await.len(), 2);
}

async fn bad_input_is_refused_field_by_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let future = at(6 * 60);
    let cases: Vec<(Value, &[&str])> = vec![
        (json!({}), &["component"]),
        (json!({"component": ""}), &["component"]),
        (json!({"component": "has space"}), &["component"]),
        (json!({"component": 7}), &["component"]),
        (
            json!({"component": "api", "environment": "pr od"}),
            &["environment"],
        ),
        (
            json!({"component": "api", "started_at": "2026-10-01 10:00"}),
            &["started_at"],
        ),
        (
            json!({"component": "api", "started_at": "2026-10-01T10:00:00"}),
            &["started_at"],
        ),
        (
            json!({"component": "api", "started_at": future}),
            &["started_at"],
        ),
        (
            json!({"component": "api", "resolved_at": "soon"}),
            &["resolved_at"],
        ),
        (
            json!({"component": "api", "started_at": "2026-10-01T10:00:00Z",
                   "resolved_at": "2026-10-01T09:59:59Z"}),
            &["resolved_at"],
        ),
        (
            json!({"component": "api", "title": "x".repeat(257)}),
            &["title"],
        ),
        (
            json!({"component": "api", "title": "two\nlines"}),
            &["title"],
        ),
        (
            json!({"component": "api", "summary": "x".repeat(4097)}),
            &["summary"],
        ),
        (
            json!({"component": "api", "summary": "bell\u{7}"}),
            &["summary"],
        ),
        (
            json!({"component": "api", "cause_deployment_id": "42"}),
            &["cause_deployment_id"],
        ),
        (
            json!({"component": "api", "incident_id": "not-a-uuid"}),
            &["incident_id"],
        ),
        (
            json!({"component": "api", "incident_id": "00000000-0000-0000-0000-000000000000"}),
            &["incident_id"],
        ),
        (
            json!({"component": "api", "startedat": "2026-10-01T10:00:00Z"}),
            &["startedat"],
        ),
        (
            json!({"component": "not ok", "started_at": "x", "title": 5, "colour": "red"}),
            &["colour", "component", "started_at", "title"],
        ),
    ];
    for (body, fields) in cases {
        let problem = expect_problem(post(&app, body.clone()).await, 422).await;
        assert_eq!(problem["type"], "/problems/invalid-incident", "{body}");
        let mut got = error_fields(&problem);
        got.sort();
        assert_eq!(got, fields, "{body}: {problem}");
    }
    let typo = expect_problem(
        post(
            &app,
            json!({"component": "api", "startedat": "2026-10-01T10:00:00Z"}),
        )
        .await,
        422,
    )
    .await;
    assert!(
        typo["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `started_at`"),
        "{typo}"
    );
    // Not JSON, not an object, not JSON's media type.
    let response = app
        .client
        .post(app.url(INCIDENTS))
        .header("content-type", "application/json")
        .body("{\"component\":")
        .send()
        .await
        .unwrap();
    expect_problem(response, 400).await;
    expect_problem(post(&app, json!(["api"])).await, 422).await;
    let response = app
        .client
        .post(app.url(INCIDENTS))
        .form(&[("component", "api")])
        .send()
        .await
        .unwrap();
    expect_problem(response, 415).await;
    assert!(all_incidents(&app).await.is_empty(), "nothing was stored");

    // A change: every rule, and the incident as it was.
    let incident = open(
        &app,
        json!({"component": "api", "started_at": "2026-10-01T10:00:00Z"}),
    )
    .await;
    let id = incident["id"].as_str().unwrap();
    let changes: Vec<(Value, &[&str])> = vec![
        (json!({}), &["(body)"]),
        (
            json!({"resolved_at": "2026-10-01T09:00:00Z"}),
            &["resolved_at"],
        ),
        (json!({"resolved_at": future}), &["resolved_at"]),
        (json!({"resolved_at": "later"}), &["resolved_at"]),
        (json!({"resolved_at": ""}), &["resolved_at"]),
        (json!({"resolved": false}), &["resolved"]),
        (json!({"resolved": "yes"}), &["resolved"]),
        (
            json!({"resolved": true, "resolved_at": "2026-10-01T11:00:00Z"}),
            &["resolved"],
        ),
        (json!({"title": "a\tb"}), &["title"]),
        (json!({"cause_deployment_id": 1}), &["cause_deployment_id"]),
        (
            json!({"resolvd_at": "2026-10-01T11:00:00Z"}),
            &["resolvd_at"],
        ),
        (json!({"component": "web"}), &["component"]),
    ];
    for (body, fields) in changes {
        let problem = expect_problem(patch(&app, id, body.clone()).await, 422).await;
        assert_eq!(problem["type"], "/problems/invalid-incident", "{body}");
        assert_eq!(error_fields(&problem), fields, "{body}: {problem}");
    }
    assert_eq!(
        app.get_json(&format!("{INCIDENTS}/{id}")).await,
        incident,
        "unchanged"
    );
    expect_problem(
        patch(&app, "not-a-uuid", json!({"resolved": true})).await,
        400,
    )
    .await;
    expect_problem(app.get(&format!("{INCIDENTS}/not-a-uuid")).await, 400).await;
    let missing = Uuid::new_v4().to_string();
    expect_problem(patch(&app, &missing, json!({"resolved": true})).await, 404).await;
    expect_problem(app.get(&format!("{INCIDENTS}/{missing}")).await, 404).await;
    // Query parameters of the listing.
    let problem = expect_problem(
        app.get(&format!("{INCIDENTS}?state=closed&limit=0&since=yesterday"))
            .await,
        422,
    )
    .await;
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(fields, ["limit", "since", "state"]);
    expect_problem(app.get(&format!("{INCIDENTS}?colour=red")).await, 400).await;
    assert_eq!(all_incidents(&app).await.len(), 1);
}

async fn cause_deployments_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api_prod = deploy(&app, "api", "production", "2026-10-01T09:00:00Z").await;
    let web_prod = deploy(&app, "web", "production", "2026-10-01T09:00:00Z").await;
    let api_staging = deploy(&app, "api", "staging", "2026-10-01T09:00:00Z").await;
    let base = json!({"component": "api", "started_at": "2026-10-01T10:00:00Z"});
    let with_cause = |cause: &str| {
        let mut body = base.clone();
        body["cause_deployment_id"] = json!(cause);
        body
    };
    let missing = Uuid::new_v4().to_string();
    let problem = expect_problem(post(&app, with_cause(&missing)).await, 422).await;
    assert_eq!(error_fields(&problem), ["cause_deployment_id"]);
    assert!(
        problem["detail"].as_str().unwrap().contains(&missing),
        "{problem}"
    );
    for (other, component, environment) in [
        (&web_prod, "web", "production"),
        (&api_staging, "api", "staging"),
    ] {
        let problem = expect_problem(post(&app, with_cause(other)).await, 422).await;
        assert_eq!(error_fields(&problem), ["cause_deployment_id"]);
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "component {component} in environment {environment}"
            )) && detail.contains("the incident's component api in environment production"),
            "{detail}"
        );
    }
    assert!(all_incidents(&app).await.is_empty(), "nothing was stored");
    let opened = open(&app, with_cause(&api_prod)).await;
    assert_eq!(opened["cause_deployment_id"], api_prod.as_str());
    // A change is checked the same way.
    let id = opened["id"].as_str().unwrap();
    let problem = expect_problem(
        patch(&app, id, json!({"cause_deployment_id": web_prod})).await,
        422,
    )
    .await;
    assert_eq!(error_fields(&problem), ["cause_deployment_id"]);
    let problem = expect_problem(
        patch(&app, id, json!({"cause_deployment_id": missing})).await,
        422,
    )
    .await;
    assert_eq!(error_fields(&problem), ["cause_deployment_id"]);
    assert_eq!(app.get_json(&format!("{INCIDENTS}/{id}")).await, opened);
}

async fn scopes_and_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.create_token("admin", Role::Admin, &[]).await;
    let read = app.create_token("reader", Role::Read, &[]).await;
    let web_runner = app
        .create_token("web-runner", Role::Ingest, &["component=web"])
        .await;
    let send = |method: reqwest::Method, path: String, token: &str, body: Option<Value>| {
        let mut request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let api = json!({"component": "api", "started_at": "2026-10-01T10:00:00Z"});
    let refused = send(
        reqwest::Method::POST,
        INCIDENTS.into(),
        &web_runner,
        Some(api.clone()),
    )
    .await
    .unwrap();
    let problem = expect_problem(refused, 403).await;
    assert_eq!(problem["type"], "/problems/forbidden");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("component=web"),
        "{problem}"
    );
    let refused = send(
        reqwest::Method::POST,
        INCIDENTS.into(),
        &read,
        Some(api.clone()),
    )
    .await
    .unwrap();
    expect_problem(refused, 403).await;
    let anonymous = app
        .client
        .post(app.url(INCIDENTS))
        .json(&api)
        .send()
        .await
        .unwrap();
    expect_problem(anonymous, 401).await;
    let listing = |token: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(app.url(&format!("{INCIDENTS}?limit=1000")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    assert!(listing(read.clone()).await.is_empty(), "nothing was stored");

    // Within its scope the scoped token opens and resolves.
    let web = send(
        reqwest::Method::POST,
        INCIDENTS.into(),
        &web_runner,
        Some(json!({"component": "web", "started_at": "2026-10-01T10:00:00Z"})),
    )
    .await
    .unwrap();
    assert_eq!(web.status(), 201);
    let web: Value = web.json().await.unwrap();
    let web_id = web["id"].as_str().unwrap();
    let resolved = send(
        reqwest::Method::PATCH,
        format!("{INCIDENTS}/{web_id}"),
        &web_runner,
        Some(json!({"resolved": true})),
    )
    .await
    .unwrap();
    assert_eq!(resolved.status(), 200);
    // Not an incident of another component, even to resolve it.
    let api_incident = send(reqwest::Method::POST, INCIDENTS.into(), &admin, Some(api))
        .await
        .unwrap();
    assert_eq!(api_incident.status(), 201);
    let api_incident: Value = api_incident.json().await.unwrap();
    let api_id = api_incident["id"].as_str().unwrap();
    let refused = send(
        reqwest::Method::PATCH,
        format!("{INCIDENTS}/{api_id}"),
        &web_runner,
        Some(json!({"resolved": true})),
    )
    .await
    .unwrap();
    expect_problem(refused, 403).await;
    let refused = send(
        reqwest::Method::PATCH,
        format!("{INCIDENTS}/{api_id}"),
        &read,
        Some(json!({"resolved": true})),
    )
    .await
    .unwrap();
    expect_problem(refused, 403).await;
    // Reading needs `read`: an ingest token may not list.
    let refused = send(reqwest::Method::GET, INCIDENTS.into(), &web_runner, None)
        .await
        .unwrap();
    expect_problem(refused, 403).await;
    let stored = listing(read).await;
    assert_eq!(stored.len(), 2);
    let api_now = stored.iter().find(|i| i["id"] == api_id).unwrap();
    assert_eq!(
        api_now["state"], "open",
        "the refused resolution changed nothing"
    );
}

async fn listing_by_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // (component, environment, start, resolved after seconds); two start at
    // the same instant, to be ordered by the order they were stored.
    let plan: [(&str, &str, &str, Option<i64>); 8] = [
        ("api", "production", "2026-10-01T10:00:00Z", Some(60)),
        ("api", "production", "2026-10-03T10:00:00Z", None),
        ("web", "production", "2026-10-02T10:00:00Z", Some(600)),
        ("api", "staging", "2026-10-02T10:00:00Z", None),
        ("web", "staging", "2026-10-05T10:00:00Z", Some(5)),
        ("api", "production", "2026-10-04T10:00:00Z", Some(3600)),
        ("db", "production", "2026-10-04T10:00:00Z", None),
        ("api", "production", "2026-09-20T10:00:00Z", Some(1)),
    ];
    let mut stored = Vec::new();
    for (component, environment, start, resolve) in plan {
        let mut body =
            json!({"component": component, "environment": environment, "started_at": start});
        if let Some(seconds) = resolve {
            body["resolved_at"] = json!(rfc(t(start) + Duration::seconds(seconds)));
        }
        let view = open(&app, body).await;
        stored.push((stored.len(), view));
    }
    // Newest start first; of two at once, the one stored last.
    let mut expected = stored.clone();
    expected.sort_by(|(ia, a), (ib, b)| {
        let key = |v: &Value| t(v["started_at"].as_str().unwrap());
        key(b).cmp(&key(a)).then(ib.cmp(ia))
    });
    let expected: Vec<Value> = expected.into_iter().map(|(_, v)| v).collect();
    let pages = app.pages(&format!("{INCIDENTS}?limit=3")).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 2]);
    assert_eq!(pages.concat(), expected);

    let matching = |keep: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        expected.iter().filter(|v| keep(v)).cloned().collect()
    };
    let open_ones = app
        .pages(&format!("{INCIDENTS}?state=open&limit=2"))
        .await
        .concat();
    assert_eq!(open_ones, matching(&|v| v["resolved_at"].is_null()));
    let resolved = app
        .pages(&format!("{INCIDENTS}?state=resolved&limit=2"))
        .await
        .concat();
    assert_eq!(resolved, matching(&|v| !v["resolved_at"].is_null()));
    let api_prod = app
        .pages(&format!(
            "{INCIDENTS}?component=api&environment=production&limit=2"
        ))
        .await
        .concat();
    assert_eq!(
        api_prod,
        matching(&|v| v["component"] == "api" && v["environment"] == "production")
    );
    let staging_or_prod = app
        .pages(&format!("{INCIDENTS}?environment=staging&limit=1"))
        .await
        .concat();
    assert_eq!(
        staging_or_prod,
        matching(&|v| v["environment"] == "staging")
    );
    let (since, until) = (t("2026-10-02T10:00:00Z"), t("2026-10-04T10:00:00Z"));
    let window = app
        .pages(&format!(
            "{INCIDENTS}?since=2026-10-02T10:00:00Z&until=2026-10-04T10:00:00Z&limit=1"
        ))
        .await
        .concat();
    assert_eq!(
        window,
        matching(&|v| {
            let started = t(v["started_at"].as_str().unwrap());
            started >= since && started < until
        })
    );
    assert_eq!(window.len(), 3, "since is inclusive, until exclusive");
}

/// (component, environment, start, restored after seconds): the incidents the
/// statistics test sends.
const INCIDENT_PLAN: [(&str, &str, &str, Option<i64>); 15] = [
    ("api", "production", "2026-10-02T10:00:00Z", Some(1_800)),
    ("api", "production", "2026-10-03T10:00:00Z", Some(90)),
    ("api", "staging", "2026-10-04T10:00:00Z", Some(7_200)),
    ("api", "production", "2026-10-05T10:00:00Z", Some(600)),
    ("api", "production", "2026-10-06T10:00:00Z", None),
    // Before the window: not counted.
    ("api", "production", "2026-09-30T10:00:00Z", Some(99_999)),
    // A component never deployed in the window: a group of its own.
    ("db", "production", "2026-10-03T00:00:00Z", Some(86_400 * 2)),
    // Resolved after the window ends: counted with its whole restore time.
    ("web", "production", "2026-10-10T23:00:00Z", Some(7_200)),
    // Enough restored incidents of api that p90 and p95 are different ranks.
    ("api", "production", "2026-10-07T10:00:00Z", Some(10)),
    ("api", "production", "2026-10-07T11:00:00Z", Some(70)),
    ("api", "production", "2026-10-07T12:00:00Z", Some(20)),
    ("api", "production", "2026-10-08T10:00:00Z", Some(60)),
    ("api", "production", "2026-10-08T11:00:00Z", Some(30)),
    ("api", "production", "2026-10-09T10:00:00Z", Some(50)),
    ("api", "production", "2026-10-09T11:00:00Z", Some(40)),
];
const WINDOW: &str = "since=2026-10-01T00:00:00Z&until=2026-10-11T00:00:00Z";

async fn seed_for_stats(app: &TestApp) {
    // Deployments: api fails at 10:05 on the 2nd and is restored by a success
    // at 10:35 (1,800 s by failure streaks); web deploys once.
    for (component, start, seconds, status) in [
        ("api", "2026-10-02T10:00:00Z", 300, "failed"),
        ("api", "2026-10-02T10:30:00Z", 300, "success"),
        ("web", "2026-10-03T10:00:00Z", 60, "success"),
    ] {
        let id = deploy(app, component, "production", start).await;
        app.store(
            json!({"component": component, "phase": "finish", "status": status,
                         "deployment_id": id,
                         "timestamp": rfc(t(start) + Duration::seconds(seconds))}),
        )
        .await;
    }
    for (component, environment, start, restored) in INCIDENT_PLAN {
        let mut body =
            json!({"component": component, "environment": environment, "started_at": start});
        let opened = open(app, body.clone()).await;
        if let Some(seconds) = restored {
            let id = opened["id"].as_str().unwrap();
            body = json!({"resolved_at": rfc(t(start) + Duration::seconds(seconds))});
            assert_eq!(patch(app, id, body).await.status(), 200);
        }
    }
}

/// The incident figures of the incidents of `INCIDENT_PLAN` that `keep`
/// selects and that start in the window, computed from their definition.
fn expected_figures(keep: impl Fn(&str, &str) -> bool) -> Value {
    let (since, until) = (t("2026-10-01T00:00:00Z"), t("2026-10-11T00:00:00Z"));
    let inside: Vec<Option<i64>> = INCIDENT_PLAN
        .iter()
        .filter(|(c, e, start, _)| keep(c, e) && t(start) >= since && t(start) < until)
        .map(|(_, _, _, restored)| *restored)
        .collect();
    let mut restores: Vec<f64> = inside.iter().flatten().map(|s| *s as f64).collect();
    restores.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        (!restores.is_empty()).then(|| {
            let rank = (p / 100.0 * restores.len() as f64).ceil() as usize;
            restores[rank.max(1) - 1]
        })
    };
    let mean = (!restores.is_empty()).then(|| restores.iter().sum::<f64>() / restores.len() as f64);
    let level = mean.map(|m| {
        if m < 3_600.0 {
            "elite"
        } else if m < 86_400.0 {
            "high"
        } else if m < 7.0 * 86_400.0 {
            "medium"
        } else {
            "low"
        }
    });
    json!({
        "count": inside.len(),
        "resolved": restores.len(),
        "unresolved": inside.len() - restores.len(),
        "mean_time_to_restore_seconds": mean,
        "median_time_to_restore_seconds": rank(50.0),
        "p90_time_to_restore_seconds": rank(90.0),
        "level": level,
    })
}

/// Counts, percentiles and level exactly; the mean, a quotient, to within
/// 1e-9 s of the one computed here.
fn assert_figures(actual: &Value, expected: &Value, context: &str) {
    let without_mean = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut()
            .unwrap()
            .remove("mean_time_to_restore_seconds");
        v
    };
    assert_eq!(without_mean(actual), without_mean(expected), "{context}");
    let mean = |v: &Value| v["mean_time_to_restore_seconds"].as_f64();
    match (mean(actual), mean(expected)) {
        (Some(a), Some(e)) => assert!((a - e).abs() < 1e-9, "{context}: {a} != {e}"),
        (a, e) => assert_eq!(a, e, "{context}"),
    }
}

async fn incident_figures(backend: Backend) -> Vec<Value> {
    let app = TestApp::spawn(backend).await;
    seed_for_stats(&app).await;
    let mut answers = Vec::new();
    for group_by in ["component", "component,environment", "environment", "none"] {
        answers.push(
            app.get_json(&format!("/api/v1/stats?{WINDOW}&group_by={group_by}"))
                .await,
        );
    }
    answers.push(
        app.get_json(&format!(
            "/api/v1/stats?{WINDOW}&component=api&environment=production"
        ))
        .await,
    );
    answers
}

async fn stats_report_incident_restore_times(backend: Backend) {
    let answers = incident_figures(backend).await;
    let by_component = &answers[0];
    let definitions = &by_component["definitions"];
    assert!(
        definitions["mean_time_to_restore_seconds"]
            .as_str()
            .unwrap()
            .starts_with("failure streaks"),
        "{definitions}"
    );
    assert!(
        definitions["incidents.mean_time_to_restore_seconds"]
            .as_str()
            .unwrap()
            .contains("resolved_at − started_at"),
        "{definitions}"
    );
    let groups = by_component["groups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["component"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "db", "web"]);
    let api = &groups[0];
    assert_figures(
        &api["incidents"],
        &expected_figures(|c, _| c == "api"),
        "api",
    );
    assert_eq!(
        api["incidents"]["count"], 12,
        "the one before the window is left out"
    );
    assert_eq!(api["incidents"]["resolved"], 11);
    // Of 10, 20, 30, 40, 50, 60, 70, 90, 600, 1800 and 7200 s: ranks 6 and 10.
    assert_eq!(api["incidents"]["median_time_to_restore_seconds"], 60.0);
    assert_eq!(api["incidents"]["p90_time_to_restore_seconds"], 1_800.0);
    assert_eq!(api["incidents"]["unresolved"], 1);
    // Beside it, the failure-streak figure, unchanged.
    assert_eq!(api["mean_time_to_restore_seconds"], 1_800.0);
    let db = &groups[1];
    assert_eq!(db["deployments"], 0, "a group for incidents alone");
    assert_figures(&db["incidents"], &expected_figures(|c, _| c == "db"), "db");
    assert_eq!(db["incidents"]["level"], "medium");
    let web = &groups[2];
    assert_eq!(web["deployments"], 1);
    assert_figures(
        &web["incidents"],
        &expected_figures(|c, _| c == "web"),
        "web",
    );

    let pairs = answers[1]["groups"].as_array().unwrap();
    for group in pairs {
        let (component, environment) = (
            group["component"].as_str().unwrap(),
            group["environment"].as_str().unwrap(),
        );
        assert_figures(
            &group["incidents"],
            &expected_figures(|c, e| c == component && e == environment),
            &format!("{component} {environment}"),
        );
    }
    assert_eq!(pairs.len(), 4, "api/production, api/staging, db, web");
    for group in answers[2]["groups"].as_array().unwrap() {
        let environment = group["environment"].as_str().unwrap();
        assert_figures(
            &group["incidents"],
            &expected_figures(|_, e| e == environment),
            environment,
        );
    }
    let all = &answers[3]["groups"][0];
    assert_figures(&all["incidents"], &expected_figures(|_, _| true), "all");
    let filtered = &answers[4]["groups"];
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_figures(
        &filtered[0]["incidents"],
        &expected_figures(|c, e| c == "api" && e == "production"),
        "api in production",
    );
}

/// The same history gives the same answers, to the last digit, on both backends.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_report_the_same_incident_figures() {
    let sqlite = incident_figures(Backend::Sqlite).await;
    let mysql = incident_figures(Backend::Mysql).await;
    let figures = |answers: &[Value]| -> Vec<Value> {
        answers
            .iter()
            .map(|a| {
                a["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| {
                        json!([
                            g["component"],
                            g["environment"],
                            g["incidents"],
                            g["mean_time_to_restore_seconds"]
                        ])
                    })
                    .collect()
            })
            .collect()
    };
    assert_eq!(figures(&sqlite), figures(&mysql));
}

async fn the_dashboard_shows_incidents(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = Utc::now();
    let minutes_ago = |m: i64| rfc(now - Duration::minutes(m));
    deploy(&app, "api", "production", &minutes_ago(120)).await;
    // api: restored in 30 minutes, and one still open; billing never deployed.
    open(
        &app,
        json!({"component": "api", "started_at": minutes_ago(90),
                      "resolved_at": minutes_ago(60)}),
    )
    .await;
    open(
        &app,
        json!({"component": "api", "started_at": minutes_ago(10)}),
    )
    .await;
    open(
        &app,
        json!({"component": "billing", "started_at": minutes_ago(180),
                      "resolved_at": minutes_ago(60)}),
    )
    .await;

    let page = scraper::Html::parse_document(&app.get("/").await.text().await.unwrap());
    let headings = crate::helpers::texts(&page, "#components-table thead th");
    let column = headings.iter().position(|h| h == "Incidents").unwrap();
    let rows = crate::helpers::cells(&page, "#components-table");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], "api");
    assert_eq!(rows[0][column], "2 restored in 30m elite 1 open");
    assert_eq!(
        rows[1][0], "billing",
        "a component with incidents only has its row"
    );
    assert_eq!(rows[1][column], "1 restored in 2h high");

    // The mean of 30 minutes and 2 hours: 1 h 15 min, high (under a day).
    assert_cards(
        &page,
        &[
            "Incidents 3 (1 open)",
            "Time to restore, by incidents 1h 15m high",
        ],
    );

    // The component's page: its own figures and its incidents, newest first.
    let page = scraper::Html::parse_document(
        &app.get("/component?component=api")
            .await
            .text()
            .await
            .unwrap(),
    );
    let rows = crate::helpers::cells(&page, "#incidents-table");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], "production");
    assert_eq!(&rows[0][2..], ["not yet", "-"]);
    assert_eq!(rows[1][3], "30m");
    assert_cards(
        &page,
        &[
            "Incidents 2 (1 open)",
            "Time to restore, by incidents 30m elite",
        ],
    );
}

/// Fails unless, for each of `expected`, a card of the page starts with it.
fn assert_cards(page: &scraper::Html, expected: &[&str]) {
    let cards = crate::helpers::texts(page, ".card");
    for expected in expected {
        assert!(
            cards.iter().any(|c| c.starts_with(expected)),
            "{expected}: {cards:?}"
        );
    }
}

backend_tests!(
    the_dashboard_shows_incidents,
    open_and_resolve,
    retries_and_conflicts,
    bad_input_is_refused_field_by_field,
    cause_deployments_are_checked,
    scopes_and_roles,
    listing_by_pages,
    stats_report_incident_restore_times,
);
