//! The dashboard over HTTP: its figures are the API's, a filter the API refuses
//! is refused on the page in words, pages ask for a read token where the API
//! does, and every page is sent with its security headers. (The same pages in
//! a real browser: tests/browser.rs.)

use reqwest::StatusCode;
use scraper::{Html, Selector};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, TestDatabase, at, cells};

async fn html(app: &TestApp, path: &str) -> (StatusCode, Html, reqwest::header::HeaderMap) {
    let response = app.get(path).await;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (status, Html::parse_document(&text), headers)
}

async fn deploy(
    app: &TestApp,
    component: &str,
    environment: &str,
    ago: i64,
    seconds: i64,
    status: &str,
) {
    let started = app
        .store(
            json!({"component": component, "environment": environment, "phase": "start",
                      "timestamp": at(-ago)}),
        )
        .await;
    app.store(
        json!({"component": component, "environment": environment, "phase": "finish",
                     "status": status, "deployment_id": started["deployment"]["id"],
                     "timestamp": at(-ago + seconds)}),
    )
    .await;
}

async fn the_overview_shows_the_apis_figures(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    deploy(&app, "api", "production", 7_200, 120, "success").await;
    deploy(&app, "api", "production", 3_600, 300, "exit-1").await;
    deploy(&app, "web", "staging", 1_800, 60, "success").await;
    let api: Value = app
        .get_json("/api/v1/stats?group_by=component,environment")
        .await;
    let (status, page, headers) = html(&app, "/").await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let rows = cells(&page, "#components-table");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, group) in rows.iter().zip(api["groups"].as_array().unwrap()) {
        assert_eq!(row[0], group["component"].as_str().unwrap());
        assert_eq!(row[1], group["environment"].as_str().unwrap());
        assert_eq!(row[2], group["deployments"].to_string());
        let rate = group["success_rate"].as_f64().unwrap();
        assert_eq!(row[3], format!("{:.0}%", rate * 100.0));
        let level = group["levels"]["deploy_frequency"].as_str().unwrap();
        assert!(row[6].ends_with(level), "{row:?} {level}");
    }
    // The component filter narrows the rows, and sorting keeps it.
    let (status, page, _) = html(&app, "/?component=web").await;
    assert_eq!(status, 200);
    let rows = cells(&page, "#components-table");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0][0].as_str(), rows[0][1].as_str()),
        ("web", "staging")
    );
    let sort = Selector::parse("#components-table thead a").unwrap();
    let link = page
        .select(&sort)
        .next()
        .unwrap()
        .value()
        .attr("href")
        .unwrap();
    assert!(link.contains("component=web"), "{link}");
    // The stylesheet is ours, hashed, and cached for a year.
    let link = Selector::parse("link[rel=stylesheet]").unwrap();
    let href = page
        .select(&link)
        .next()
        .unwrap()
        .value()
        .attr("href")
        .unwrap()
        .to_owned();
    let css = app.get(&href).await;
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(
        app.get("/static/app-0000000000000000.css").await.status(),
        404
    );
}

async fn pages_refuse_what_the_api_refuses_in_words(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    deploy(&app, "api", "production", 600, 60, "success").await;
    for (path, status, words) in [
        ("/?window=week", 422, "window"),
        ("/?tz=Mars/Olympus", 422, "IANA time zone"),
        ("/?env=bad%20name", 422, "environment"),
        ("/?since=2026-11-10&until=2026-11-01", 422, "before the end"),
        ("/component", 422, "component"),
        ("/component?component=-x", 422, "component"),
        (
            "/component?component=api&window=custom&since=2000-01-01",
            422,
            "3660 days",
        ),
        ("/deployments/not-a-uuid", 400, "UUID"),
        (
            "/deployments/0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10",
            404,
            "No deployment",
        ),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}: a page, not a problem body"
        );
        let text = response.text().await.unwrap();
        assert!(text.contains(words), "{path}: {text}");
    }
}

async fn a_component_and_a_deployment_have_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    deploy(&app, "billing/worker", "production", 3_600, 120, "success").await;
    deploy(&app, "billing/worker", "production", 1_800, 240, "failed").await;
    let (status, page, _) = html(&app, "/component?component=billing%2Fworker&window=7d").await;
    assert_eq!(status, 200);
    let svg = Selector::parse(".chart svg").unwrap();
    assert_eq!(page.select(&svg).count(), 3, "three charts");
    let deployments = cells(&page, "#deployments-table");
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[0][3], "failed", "newest first: {deployments:?}");
    let link = Selector::parse("#deployments-table a").unwrap();
    let href = page
        .select(&link)
        .next()
        .unwrap()
        .value()
        .attr("href")
        .unwrap()
        .to_owned();
    let (status, detail, _) = html(&app, &href).await;
    assert_eq!(status, 200, "{href}");
    let text = detail.root_element().text().collect::<String>();
    assert!(
        text.contains("billing/worker") && text.contains("4m"),
        "{text}"
    );
    assert!(text.contains("against the median"), "{text}");
}

async fn pages_ask_for_a_read_token_where_the_api_does(backend: Backend) {
    const ADMIN: &str = "pages-admin-token-0123456789abcdef0123";
    let app = TestApp::start_with(TestDatabase::create(backend).unwrap(), |s| {
        s.admin_token = Some(deploytime_server::access::Secret::new(ADMIN));
    });
    let reader = app
        .create_token("dashboard", deploytime_server::access::Role::Read, &[])
        .await;
    let runner = app
        .create_token("runner", deploytime_server::access::Role::Ingest, &[])
        .await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| browser.get(app.url(path)).send();
    let response = get("/component?component=api").await.unwrap();
    assert_eq!(response.status(), 303);
    let to = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to, "/sign-in?next=%2Fcomponent%3Fcomponent%3Dapi");
    assert_eq!(get(&to).await.unwrap().status(), 200);
    let sign_in = |token: &str| {
        browser
            .post(app.url("/sign-in"))
            .form(&[("token", token), ("next", "/component?component=api")])
            .send()
    };
    for (token, words) in [
        ("dt_not-a-token", "not valid"),
        (runner.as_str(), "read role"),
        ("a; b", "not a token"),
    ] {
        let refused = sign_in(token).await.unwrap();
        assert_eq!(refused.status(), 401, "{token}");
        assert!(refused.headers().get("set-cookie").is_none());
        assert!(refused.text().await.unwrap().contains(words), "{token}");
    }
    let signed = sign_in(&reader).await.unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()["location"], "/component?component=api");
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let page = get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Sign out"));
    let out = browser.post(app.url("/sign-out")).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(get("/").await.unwrap().status(), 303, "signed out");
    // A site elsewhere is never where signing in leads.
    let elsewhere = browser
        .post(app.url("/sign-in"))
        .form(&[("token", reader.as_str()), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.headers()["location"], "/");
}

backend_tests!(
    the_overview_shows_the_apis_figures,
    pages_refuse_what_the_api_refuses_in_words,
    a_component_and_a_deployment_have_pages,
    pages_ask_for_a_read_token_where_the_api_does,
);
