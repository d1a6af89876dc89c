//! Requests the server refuses before looking at the fields: every one answered
//! with a problem body, none with a 500, and nothing stored.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, expect_problem};

async fn malformed_bodies_are_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for body in ["{", "{\"component\": \"api\",}", "", "\u{0}", "nul\u{0}l"] {
        let response = app
            .client
            .post(app.url("/api/v1/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = expect_problem(response, 400).await;
        assert_eq!(problem["type"], "/problems/malformed-body");
    }
    // Valid JSON that is not an object is a bad value, not bad syntax.
    for body in ["[]", "\"api\"", "null", "42"] {
        let response = app
            .client
            .post(app.url("/api/v1/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        expect_problem(response, 422).await;
    }
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, b'{', b'}'])
        .send()
        .await
        .unwrap();
    expect_problem(response, 400).await;
    assert!(app.all_deployments().await.is_empty());
}

async fn wrong_content_types_are_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/xml"),
        Some("application/json; charset=latin1"),
    ] {
        let mut request = app
            .client
            .post(app.url("/api/v1/events"))
            .body(r#"{"component":"api","phase":"start"}"#);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let problem = expect_problem(request.send().await.unwrap(), 415).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("application/json") || detail.contains("UTF-8"),
            "{problem}"
        );
    }
    // Parameters and +json types are fine.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.deploytime+json",
    ] {
        let response = app
            .client
            .post(app.url("/api/v1/events"))
            .header("content-type", content_type)
            .body(r#"{"component":"api","phase":"start"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{content_type}");
    }
}

async fn oversized_bodies_are_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let padding = "x".repeat(64 * 1024);
    let response = app
        .post_json(json!({"component": "api", "phase": "start", "owner": padding}))
        .await;
    expect_problem(response, 413).await;
    // Without a Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b' '; 1024])).collect();
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect_problem(response, 413).await;
    assert!(app.all_deployments().await.is_empty());
}

async fn unknown_routes_and_methods_are_problems(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    expect_problem(app.get("/api/v1/nope").await, 404).await;
    let response = app
        .client
        .put(app.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    expect_problem(response, 405).await;
    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    expect_problem(response, 405).await;
    expect_problem(app.get("/api/v1/deployments/not-a-uuid").await, 400).await;
    expect_problem(
        app.get("/api/v1/deployments/0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10")
            .await,
        404,
    )
    .await;
    expect_problem(app.get("/api/v1/deployments?limit=many").await, 400).await;
    expect_problem(app.get("/api/v1/deployments?limit=0").await, 422).await;
    expect_problem(app.get("/api/v1/deployments?limit=1001").await, 422).await;
    expect_problem(app.get("/api/v1/deployments?component=a%20b").await, 422).await;
    expect_problem(app.get("/api/v1/deployments?colour=red").await, 400).await;
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Mysql => "mysql",
    };
    assert_eq!(body["database"], expected);
}

backend_tests!(
    malformed_bodies_are_400,
    wrong_content_types_are_415,
    oversized_bodies_are_413,
    unknown_routes_and_methods_are_problems,
    health_and_readiness,
);
