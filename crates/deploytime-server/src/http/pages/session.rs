//! Who may see the pages: whoever may call the API's reads. On a server that
//! serves anonymous calls the pages are open; otherwise a token with the `read`
//! role is asked for once, by a form, and kept in a session cookie (HttpOnly,
//! SameSite=Strict, Secure over TLS). The token is never put in a URL or a log.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use deploytime_core::access::{Denied, Role};

use super::frame::{Chrome, message, page};
use crate::access::{self, AccessError, AccessPolicy};
use crate::db::Database;

const COOKIE: &str = "deploytime_token";

/// The caller of an admitted page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageCaller {
    /// Whether the caller signed in (and can sign out).
    pub signed_in: bool,
}

/// The caller's credential checked for the `read` role.
async fn check(req: &HttpRequest, token: Option<&str>) -> Result<(), AccessError> {
    let (Some(policy), Some(db)) = (
        req.app_data::<web::Data<AccessPolicy>>(),
        req.app_data::<web::Data<Database>>(),
    ) else {
        return Err(AccessError::Denied(Denied::Forbidden(
            "the access policy is not configured".into(),
        )));
    };
    let authorization = token.map(|t| format!("Bearer {t}"));
    access::authorize(
        policy,
        db,
        authorization.as_deref().map(str::as_bytes),
        Role::Read,
    )
    .await
    .map(|_| ())
}

/// Where to come back to after signing in: this page, if it is one of ours.
fn next_of(req: &HttpRequest) -> String {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if path.starts_with('/') && !path.starts_with("//") {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// Admits a page's request, or answers it: a sign-in redirect for a caller
/// without a valid token, a refusal for one whose token cannot read.
pub(crate) async fn admit(req: &HttpRequest) -> Result<PageCaller, HttpResponse> {
    let cookie = req.cookie(COOKIE);
    let token = cookie.as_ref().map(|c| c.value().to_owned());
    match check(req, token.as_deref()).await {
        Ok(()) => Ok(PageCaller {
            signed_in: token.is_some(),
        }),
        Err(AccessError::Denied(Denied::Unauthenticated(_))) => {
            let to = format!(
                "/sign-in?{}",
                serde_urlencoded::to_string([("next", next_of(req))]).unwrap_or_default()
            );
            Err(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to))
                .finish())
        }
        Err(AccessError::Denied(Denied::Forbidden(reason))) => {
            Err(message(StatusCode::FORBIDDEN, "Not allowed", &reason))
        }
        Err(AccessError::Database(e)) => {
            tracing::warn!(error = %e, "the database did not answer a page's access check");
            Err(message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database cannot be reached just now; try again in a moment.",
            ))
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    next: String,
    message: Option<String>,
}

fn sign_in_page(status: StatusCode, next: String, message: Option<String>) -> HttpResponse {
    let chrome = Chrome::new(String::new(), false);
    page(
        status,
        &SignInPage {
            chrome,
            next,
            message,
        },
    )
}

/// A local path to go to after signing in; anything else goes to the overview.
fn local(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub(crate) async fn sign_in_form(query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let next = query
        .iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.as_str());
    sign_in_page(StatusCode::OK, local(next), None)
}

#[derive(serde::Deserialize)]
pub(crate) struct SignIn {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// Checks the token and keeps it in the session cookie.
#[tracing::instrument(skip_all)]
pub(crate) async fn sign_in(req: HttpRequest, form: web::Form<SignIn>) -> HttpResponse {
    let SignIn { token, next } = form.into_inner();
    let next = local(next.as_deref());
    let token = token.trim();
    // A cookie carries visible ASCII without separators; every token the server
    // issues is such.
    let plain = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'));
    let refused = |message: &str| {
        sign_in_page(
            StatusCode::UNAUTHORIZED,
            next.clone(),
            Some(message.to_owned()),
        )
    };
    if !plain {
        return refused("That is not a token this server issues.");
    }
    match check(&req, Some(token)).await {
        Ok(()) => {
            let secure = req.connection_info().scheme() == "https";
            let cookie = Cookie::build(COOKIE, token.to_owned())
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(secure)
                .finish();
            HttpResponse::SeeOther()
                .cookie(cookie)
                .insert_header((header::LOCATION, next))
                .finish()
        }
        Err(AccessError::Denied(Denied::Unauthenticated(_))) => {
            refused("This token is not valid: unknown or revoked.")
        }
        Err(AccessError::Denied(Denied::Forbidden(_))) => {
            refused("This token may not read: the pages need the read role (or admin).")
        }
        Err(AccessError::Database(_)) => sign_in_page(
            StatusCode::SERVICE_UNAVAILABLE,
            next,
            Some("The database cannot be reached just now; try again in a moment.".into()),
        ),
    }
}

/// Forgets the session's token.
pub(crate) async fn sign_out() -> HttpResponse {
    let mut cookie = Cookie::build(COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    cookie.make_removal();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/sign-in"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn only_our_own_pages_are_gone_back_to() {
        assert_eq!(
            local(Some("/component?component=api")),
            "/component?component=api"
        );
        for elsewhere in [
            Some("//evil.example/"),
            Some("https://evil.example/"),
            Some("/\\evil"),
            None,
        ] {
            assert_eq!(local(elsewhere), "/", "{elsewhere:?}");
        }
    }
}
