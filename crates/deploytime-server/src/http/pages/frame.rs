//! The frame of every page: the stylesheet (hashed, cached for a year), the
//! header and navigation, the security headers, and the message page.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use sha2::{Digest, Sha256};

/// The stylesheet, and its name with a hash of its content, so that it can be
/// cached for a year and still change with the binary.
const CSS: &str = include_str!("app.css");
static CSS_PATH: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(Sha256::digest(CSS.as_bytes()));
    format!("/static/app-{}.css", &digest[..16])
});

/// The icon, likewise hashed.
const ICON: &str = include_str!("icon.svg");
static ICON_PATH: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(Sha256::digest(ICON.as_bytes()));
    format!("/static/icon-{}.svg", &digest[..16])
});

/// What every page's frame shows.
pub(crate) struct Chrome {
    pub css: String,
    pub icon: String,
    /// The filters of the page as a query string, for the navigation's links.
    pub query: String,
    pub signed_in: bool,
}

impl Chrome {
    pub(crate) fn new(query: String, signed_in: bool) -> Self {
        Chrome {
            css: CSS_PATH.clone(),
            icon: ICON_PATH.clone(),
            query,
            signed_in,
        }
    }
}

/// The headers every page is sent with: no script or resource from anywhere,
/// not even from this server besides its stylesheet; no framing; no referrer
/// beyond this origin; not kept by shared caches.
fn secured(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ))
        .body(html)
}

/// The approver's pages: as [`secured`], and besides no referrer at all
/// (the link's token is in the URL) and nothing kept by any cache.
pub(crate) fn private_page(status: StatusCode, template: &impl Template) -> HttpResponse {
    let mut response = page(status, template);
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Renders a page; a template that cannot render (a bug) is a message page.
pub(crate) fn page(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => secured(status, html),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This page could not be shown; the server's log has the cause.",
            )
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    title: &'a str,
    message: &'a str,
}

/// A page that only says something: a refusal, an error, a missing record.
pub(crate) fn message(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let page = MessagePage {
        chrome: Chrome::new(String::new(), false),
        title,
        message,
    };
    match page.render() {
        Ok(html) => secured(status, html),
        Err(_) => secured(
            status,
            format!("<!doctype html><title>{status}</title><p>{status}</p>"),
        ),
    }
}

/// The stylesheet and the icon, by their content-hashed names.
pub(crate) async fn asset(name: web::Path<String>) -> HttpResponse {
    let path = format!("/static/{}", name.as_str());
    let (body, content_type) = if path == *CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == *ICON_PATH {
        (ICON, "image/svg+xml")
    } else {
        return HttpResponse::NotFound().finish();
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
        .body(body)
}

/// The query string's pairs, in order (repeated names kept).
pub(crate) fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    serde_urlencoded::from_str(req.query_string()).unwrap_or_default()
}
