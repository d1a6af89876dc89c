//! Access control: the role matrix of every endpoint, scopes, revocation, the
//! bootstrap admin token and the anonymous mode's rules.

use deploytime_server::access::{Role, Secret};
use deploytime_server::startup::Application;
use reqwest::Method;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestDatabase, expect_problem, settings};

/// Who calls: an `Authorization` header value, or none.
#[derive(Debug, Clone)]
enum Who {
    Nobody,
    Garbage(&'static str),
    Token(&'static str, String),
}

impl Who {
    fn header(&self) -> Option<String> {
        match self {
            Who::Nobody => None,
            Who::Garbage(value) => Some((*value).to_owned()),
            Who::Token(_, token) => Some(format!("Bearer {token}")),
        }
    }
}

async fn call(
    app: &TestApp,
    who: &Who,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(value) = who.header() {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn expect_unauthorized(response: reqwest::Response, context: &str) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer")),
        "{context}: {challenge:?}"
    );
    let problem = expect_problem(response, 401).await;
    assert_eq!(problem["type"], "/problems/unauthorized", "{context}");
}

async fn role_matrix(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.create_token("admin", Role::Admin, &[]).await;
    let read = app.create_token("reader", Role::Read, &[]).await;
    let ingest = app.create_token("runner", Role::Ingest, &[]).await;
    let scoped = app
        .create_token("web-runner", Role::Ingest, &["component=web"])
        .await;
    let admin_who = Who::Token("admin", admin.clone());

    // A deployment to read and, one per allowed DELETE, to remove.
    let make_deployment = || async {
        let response = call(
            &app,
            &admin_who,
            Method::POST,
            "/api/v1/events",
            Some(json!({"component": "api", "phase": "start"})),
        )
        .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["deployment"]["id"].as_str().unwrap().to_owned()
    };
    let kept = make_deployment().await;

    let callers = [
        Who::Nobody,
        Who::Garbage("Bearer dt_not-a-token-this-server-issued"),
        Who::Garbage("Basic YWRtaW46YWRtaW4="),
        Who::Garbage("Bearer"),
        Who::Token("ingest", ingest.clone()),
        Who::Token("read", read.clone()),
        Who::Token("admin", admin.clone()),
        Who::Token("scoped-ingest", scoped.clone()),
    ];
    for who in &callers {
        // (method, path, body, role needed, success status)
        let deleted = make_deployment().await;
        let cases: Vec<(Method, String, Option<Value>, Role, u16)> = vec![
            (
                Method::POST,
                "/api/v1/events".into(),
                Some(json!({"component": "api", "phase": "start"})),
                Role::Ingest,
                201,
            ),
            (Method::GET, "/api/v1/events".into(), None, Role::Read, 200),
            (
                Method::GET,
                "/api/v1/deployments".into(),
                None,
                Role::Read,
                200,
            ),
            (
                Method::GET,
                format!("/api/v1/deployments/{kept}"),
                None,
                Role::Read,
                200,
            ),
            (
                Method::GET,
                "/api/v1/deployments?format=csv".into(),
                None,
                Role::Read,
                200,
            ),
            (Method::GET, "/api/v1/stats".into(), None, Role::Read, 200),
            (
                Method::GET,
                "/api/v1/components".into(),
                None,
                Role::Read,
                200,
            ),
            (
                Method::PATCH,
                format!("/api/v1/deployments/{kept}"),
                Some(json!({"version": "v9", "reason": "role matrix"})),
                Role::Admin,
                200,
            ),
            (
                Method::DELETE,
                format!("/api/v1/deployments/{deleted}"),
                None,
                Role::Admin,
                204,
            ),
        ];
        for (method, path, body, needed, success) in cases {
            let context = format!("{who:?} {method} {path}");
            let response = call(&app, who, method.clone(), &path, body).await;
            match who {
                Who::Nobody | Who::Garbage(_) => expect_unauthorized(response, &context).await,
                Who::Token(role, _) => {
                    let role = match *role {
                        "ingest" | "scoped-ingest" => Role::Ingest,
                        "read" => Role::Read,
                        _ => Role::Admin,
                    };
                    if role.grants(needed) {
                        // The scoped token may write web, not api.
                        if matches!(who, Who::Token("scoped-ingest", _)) {
                            let problem = expect_problem(response, 403).await;
                            assert_eq!(problem["type"], "/problems/forbidden", "{context}");
                            assert!(
                                problem["detail"]
                                    .as_str()
                                    .unwrap()
                                    .contains("component=web"),
                                "{context}: {problem}"
                            );
                        } else {
                            assert_eq!(response.status().as_u16(), success, "{context}");
                        }
                    } else {
                        let problem = expect_problem(response, 403).await;
                        assert_eq!(problem["type"], "/problems/forbidden", "{context}");
                    }
                }
            }
        }
    }
    // Within its scope the scoped token records.
    let response = call(
        &app,
        &Who::Token("scoped-ingest", scoped),
        Method::POST,
        "/api/v1/events",
        Some(json!({"component": "web", "phase": "start", "environment": "staging"})),
    )
    .await;
    assert_eq!(response.status(), 201);
    // Health, readiness, metrics and the API description stay open.
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    // Nothing a refused call sent was stored, and only the admin deleted: the
    // kept deployment, one per caller for the DELETE (the admin's removed), the
    // starts of the ingest and admin tokens, and the scoped web start.
    let deployments = call(
        &app,
        &admin_who,
        Method::GET,
        "/api/v1/deployments?limit=1000",
        None,
    )
    .await
    .json::<Value>()
    .await
    .unwrap();
    let items = deployments["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1 + (callers.len() - 1) + 2 + 1,
        "{deployments}"
    );
}

async fn revocation_takes_effect_on_the_next_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_token("short-lived", Role::Read, &[]).await;
    let who = Who::Token("read", token);
    assert_eq!(
        call(&app, &who, Method::GET, "/api/v1/deployments", None)
            .await
            .status(),
        200
    );
    app.revoke_token("short-lived").await;
    expect_unauthorized(
        call(&app, &who, Method::GET, "/api/v1/deployments", None).await,
        "after revocation",
    )
    .await;
    // Revoking the last token brings a loopback server back to anonymous mode.
    assert_eq!(app.get("/api/v1/deployments").await.status(), 200);
}

/// Store calls are admitted from the server's copy of the tokens and checked
/// again when their commit runs: a token revoked after the copy was read, or a
/// token created after an anonymous call was admitted, stores nothing.
async fn store_calls_see_token_changes_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.create_token("runner", Role::Ingest, &[]).await;
    let runner = Who::Token("ingest", token);
    let start =
        |version: &str| Some(json!({"component": "api", "phase": "start", "version": version}));
    let versions_stored = |who: Who| {
        let app = &app;
        async move {
            let listing = call(app, &who, Method::GET, "/api/v1/events", None)
                .await
                .json::<Value>()
                .await
                .unwrap();
            let mut versions: Vec<String> = listing["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["version"].as_str().unwrap().to_owned())
                .collect();
            versions.sort();
            versions
        }
    };

    // Stored: the server's copy of the tokens now holds the runner's.
    let first = call(&app, &runner, Method::POST, "/api/v1/events", start("v1")).await;
    assert_eq!(first.status(), 201);
    app.revoke_token("runner").await;
    expect_unauthorized(
        call(&app, &runner, Method::POST, "/api/v1/events", start("v2")).await,
        "a store call after revocation",
    )
    .await;
    // No token is left, so the loopback server is anonymous again.
    assert_eq!(versions_stored(Who::Nobody).await, ["v1"]);

    // Stored anonymously: the copy now says that no token exists.
    let third = call(
        &app,
        &Who::Nobody,
        Method::POST,
        "/api/v1/events",
        start("v3"),
    )
    .await;
    assert_eq!(third.status(), 201);
    let reader = app.create_token("reader", Role::Read, &[]).await;
    expect_unauthorized(
        call(
            &app,
            &Who::Nobody,
            Method::POST,
            "/api/v1/events",
            start("v4"),
        )
        .await,
        "an anonymous store call once a token exists",
    )
    .await;
    assert_eq!(
        versions_stored(Who::Token("read", reader)).await,
        ["v1", "v3"]
    );
}

async fn tokens_are_listed_without_their_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app
        .create_token(
            "gitlab-runner",
            Role::Ingest,
            &["component=api", "environment=prod"],
        )
        .await;
    let url = app.database.url.clone();
    let listed = tokio::task::spawn_blocking(move || deploytime_server::access::tokens::list(&url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "gitlab-runner");
    assert_eq!(listed[0].role, "ingest");
    assert_eq!(listed[0].scope, "component=api environment=prod");
    let shown = format!("{listed:?}");
    assert!(!shown.contains(&token));
    assert!(!shown.contains(&deploytime_core::access::TokenDigest::of(&token).to_hex()));
    // Names are unique; revoking an unknown name is an error.
    let url = app.database.url.clone();
    let again = tokio::task::spawn_blocking(move || {
        deploytime_server::access::tokens::create(&url, "gitlab-runner", Role::Read, &[])
    })
    .await
    .unwrap();
    assert!(matches!(
        again,
        Err(deploytime_server::access::tokens::TokenError::NameTaken(_))
    ));
    let url = app.database.url.clone();
    let missing = tokio::task::spawn_blocking(move || {
        deploytime_server::access::tokens::revoke(&url, "nobody")
    })
    .await
    .unwrap();
    assert!(matches!(
        missing,
        Err(deploytime_server::access::tokens::TokenError::NotFound(_))
    ));
}

backend_tests!(
    role_matrix,
    revocation_takes_effect_on_the_next_request,
    store_calls_see_token_changes_at_once,
    tokens_are_listed_without_their_secret,
);

const ADMIN_TOKEN: &str = "bootstrap-admin-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_admin_token_is_admin_and_ends_anonymous_mode() {
    let app = TestApp::start_with(TestDatabase::create(Backend::Sqlite).unwrap(), |s| {
        s.admin_token = Some(Secret::new(ADMIN_TOKEN));
    });
    expect_unauthorized(app.get("/api/v1/deployments").await, "anonymous").await;
    let admin = Who::Token("admin", ADMIN_TOKEN.to_owned());
    let response = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/events",
        Some(json!({"component": "api", "phase": "start"})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/deployments/{id}");
    assert_eq!(
        call(&app, &admin, Method::DELETE, &path, None)
            .await
            .status(),
        204
    );
    // The bootstrap token is not stored: the database holds no token.
    let url = app.database.url.clone();
    let listed = tokio::task::spawn_blocking(move || deploytime_server::access::tokens::list(&url))
        .await
        .unwrap()
        .unwrap();
    assert!(listed.is_empty());
}

fn build_error(
    configure: impl FnOnce(&mut deploytime_server::settings::Settings),
) -> Option<String> {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let mut settings = settings(&database.url);
    configure(&mut settings);
    match Application::build(&settings) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

#[tokio::test]
async fn anonymous_mode_is_loopback_only_unless_allowed() {
    let refused = build_error(|s| s.bind = "0.0.0.0:0".into()).expect("refused");
    assert!(refused.contains("--allow-anonymous"), "{refused}");
    assert!(refused.contains("token create"), "{refused}");
    assert_eq!(
        build_error(|s| {
            s.bind = "0.0.0.0:0".into();
            s.allow_anonymous = true;
        }),
        None
    );
    assert_eq!(
        build_error(|s| {
            s.bind = "0.0.0.0:0".into();
            s.admin_token = Some(Secret::new(ADMIN_TOKEN));
        }),
        None
    );
}

#[tokio::test]
async fn a_short_bootstrap_token_is_refused() {
    let refused = build_error(|s| s.admin_token = Some(Secret::new("admin"))).expect("refused");
    assert!(
        refused.contains("DEPLOYTIME_ADMIN_TOKEN is too short"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_metrics_need_the_read_role() {
    let app = TestApp::start_with(TestDatabase::create(Backend::Sqlite).unwrap(), |s| {
        s.protect_metrics = true;
    });
    let read = app.create_token("prometheus", Role::Read, &[]).await;
    let ingest = app.create_token("runner", Role::Ingest, &[]).await;
    expect_unauthorized(app.get("/metrics").await, "no token").await;
    let refused = call(
        &app,
        &Who::Token("ingest", ingest),
        Method::GET,
        "/metrics",
        None,
    )
    .await;
    expect_problem(refused, 403).await;
    let scraped = call(
        &app,
        &Who::Token("read", read),
        Method::GET,
        "/metrics",
        None,
    )
    .await;
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("deploytime_build_info")
    );
}

/// `token create|list|revoke` as an operator runs them.
#[test]
fn token_commands_of_the_binary() {
    use std::process::Command;
    let binary = env!("CARGO_BIN_EXE_deploytime-server");
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("deploytime.db");
    let run = |args: &[&str]| {
        Command::new(binary)
            .args(args)
            .arg("--database-url")
            .arg(&database)
            .output()
            .unwrap()
    };
    let created = run(&["token", "create", "--role", "read", "--name", "dashboards"]);
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("dt_"), "{token}");

    let listed = run(&["token", "list"]);
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.starts_with("dashboards\tread\tany\t"), "{listed}");
    assert!(!listed.contains(&token));

    let bad_scope = run(&[
        "token", "create", "--role", "ingest", "--name", "x", "--scope", "team=a",
    ]);
    assert_eq!(bad_scope.status.code(), Some(1));
    assert!(
        String::from_utf8(bad_scope.stderr)
            .unwrap()
            .contains("team")
    );

    assert!(run(&["token", "revoke", "dashboards"]).status.success());
    let again = run(&["token", "revoke", "dashboards"]);
    assert_eq!(again.status.code(), Some(1));
    let message = String::from_utf8(again.stderr).unwrap();
    assert!(
        message.contains("no token named \"dashboards\""),
        "{message}"
    );
    assert!(run(&["token", "list"]).stdout.is_empty());
}
