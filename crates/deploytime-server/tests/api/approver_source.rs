//! A real HTTP server playing a team's approver directory, so the server under
//! test fetches approvers over the network as it would in production, and a
//! test decides at run time what the directory answers and how fast.
//!
//! It runs on an actix system of its own thread, so it works under any test
//! runtime, and stops when dropped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::sync::watch;

/// A status and a body.
type Answer = (u16, String);

/// What to answer, as the test last set it.
#[derive(Default)]
struct Answers {
    /// For any request without an answer of its own; 503 when unset.
    all: Option<Answer>,
    by_path: HashMap<String, Answer>,
    delay: Duration,
}

struct State {
    answers: Mutex<Answers>,
    /// A watch channel rather than a mutex, so waiting needs no polling.
    hits: watch::Sender<Vec<String>>,
}

/// A running approver directory on 127.0.0.1.
pub struct ApproverSource {
    port: u16,
    state: Arc<State>,
    handle: ServerHandle,
}

impl ApproverSource {
    /// A directory on a free port that answers 503 until told otherwise.
    pub fn start() -> ApproverSource {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("a free port for the approver source");
        let port = listener.local_addr().expect("a bound address").port();
        let state = Arc::new(State {
            answers: Mutex::new(Answers::default()),
            hits: watch::channel(Vec::new()).0,
        });
        let data = web::Data::from(Arc::clone(&state));
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("approver-source-{port}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .default_service(web::to(respond))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("the approver source listens")
                    .run();
                    let _ = handle_tx.send(server.handle());
                    let _ = server.await;
                });
            })
            .expect("the approver source thread starts");
        let handle = handle_rx.recv().expect("the approver source starts");
        ApproverSource {
            port,
            state,
            handle,
        }
    }

    /// The URL of `path_template` on this server, placeholders such as
    /// `{release_id}` left for the server under test to fill in.
    pub fn url(&self, path_template: &str) -> String {
        format!("http://127.0.0.1:{}{path_template}", self.port)
    }

    /// Answers every request without an answer of its own with `status` and `body`.
    pub fn answer(&self, status: u16, body: &str) {
        self.answers().all = Some((status, body.to_owned()));
    }

    /// Answers requests for exactly `path` (as received, percent-encoded, with
    /// or without its query) with `status` and `body`.
    pub fn answer_for(&self, path: &str, status: u16, body: &str) {
        self.answers()
            .by_path
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    /// Holds every answer back this long: a slow directory.
    pub fn delay(&self, delay: Duration) {
        self.answers().delay = delay;
    }

    /// The paths requested so far, with their query if any, as received
    /// (percent-encoded), in order of arrival.
    pub fn hits(&self) -> Vec<String> {
        self.state.hits.borrow().clone()
    }

    /// Waits until at least `count` requests have arrived (answered or not)
    /// and returns their paths; panics, listing them, when `timeout` runs out.
    pub async fn wait_for_hits(&self, count: usize, timeout: Duration) -> Vec<String> {
        let mut hits = self.state.hits.subscribe();
        match tokio::time::timeout(timeout, hits.wait_for(|h| h.len() >= count)).await {
            Ok(Ok(arrived)) => arrived.clone(),
            _ => panic!(
                "expected at least {count} request(s) at {} within {timeout:?}, got {:?}",
                self.url(""),
                self.hits()
            ),
        }
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.state.answers.lock().expect("the answers lock")
    }
}

impl Drop for ApproverSource {
    fn drop(&mut self) {
        // `stop` sends the command at once; its future only waits for the end.
        drop(self.handle.stop(false));
    }
}

/// Every request: recorded on arrival, then answered as configured.
async fn respond(request: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let path = request.uri().path();
    let target = request
        .uri()
        .path_and_query()
        .map_or(path, |target| target.as_str())
        .to_owned();
    state.hits.send_modify(|hits| hits.push(target.clone()));
    let (delay, (status, body)) = {
        let answers = state.answers.lock().expect("the answers lock");
        let answer = answers
            .by_path
            .get(&target)
            .or_else(|| answers.by_path.get(path))
            .or(answers.all.as_ref())
            .cloned()
            .unwrap_or_else(|| (503, "no answer configured".to_owned()));
        (answers.delay, answer)
    };
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    let content_type = if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    HttpResponse::build(StatusCode::from_u16(status).expect("a valid HTTP status"))
        .content_type(content_type)
        .body(body)
}
