//! The dashboard: server-rendered pages (askama templates compiled into the
//! binary) with SVG charts drawn on the server, reading through the same
//! queries and statistics as the API. No JavaScript, nothing fetched from
//! elsewhere; access as for the API's reads, with a session cookie.

mod approval;
mod charts;
mod filters;
mod frame;
mod overview;
mod releases;
mod session;
mod views;

use actix_web::web;

/// Every route of the dashboard.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview::overview))
        .route("/component", web::get().to(views::component))
        .route("/releases", web::get().to(releases::releases))
        .route("/deployments/{id}", web::get().to(views::deployment))
        .route("/sign-in", web::get().to(session::sign_in_form))
        .route("/sign-in", web::post().to(session::sign_in))
        .route("/sign-out", web::post().to(session::sign_out))
        .route("/static/{name}", web::get().to(frame::asset))
        .route("/approval", web::get().to(approval::approval_page))
        .route("/approval", web::head().to(approval::approval_page))
        .route("/approval", web::post().to(approval::approval_decision))
        .route("/approval/{rest:.*}", web::to(approval::misplaced_token));
}
