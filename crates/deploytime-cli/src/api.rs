//! Talking to the deploytime server: one blocking client, and retries with
//! exponential backoff and jitter for the failures a retry can fix (no answer, a
//! timeout, 408, 429, 5xx). Any other 4xx is the caller's mistake and is never retried.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};
use deploytime_core::wire::{EventBody, Problem, ProblemType, StoreResponse, paths};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use crate::cli::GlobalArgs;
use crate::error::Error;

/// Whether a refusal is about where or how the event was sent (credentials,
/// a wrong URL) rather than about the event: the same event can succeed once
/// `--url` or `--token` is fixed, so it is kept, not set aside.
pub fn refuses_the_sender(problem: &Problem) -> bool {
    matches!(problem.status, 401 | 403 | 404 | 405 | 407)
}

/// Reads the problem from an error response; a body that is not a problem (a
/// proxy's HTML page) is kept as the detail, cut short.
fn read_problem(response: Response) -> Problem {
    let status = response.status();
    let text = response.text().unwrap_or_default();
    match serde_json::from_str::<Problem>(&text) {
        Ok(mut problem) => {
            problem.status = status.as_u16();
            problem
        }
        Err(_) => Problem {
            kind: ProblemType::Other("about:blank".to_owned()),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            detail: text.chars().take(300).collect::<String>().trim().to_owned(),
            errors: None,
        },
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying: no answer, a timeout, 408, 429 or 5xx.
    Transient {
        cause: String,
        retry_after: Option<Duration>,
    },
    /// The server refused the call (4xx).
    Refused(Box<Problem>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Transient { cause, .. } => f.write_str(cause),
            Failure::Refused(problem) => write!(f, "{problem}"),
        }
    }
}

/// The server, as this invocation reaches it.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: Client,
    retry_for: Duration,
    /// `--timeout`: what each request may take (a long poll: on top of its wait).
    timeout: Duration,
}

impl Api {
    pub fn new(global: &GlobalArgs) -> Result<Api, Error> {
        let url = reqwest::Url::parse(&global.url)
            .map_err(|e| Error::Usage(format!("--url {:?} is not a URL: {e}", global.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Usage(format!(
                "--url {:?} must start with http:// or https://",
                global.url
            )));
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = &global.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::Usage("the token contains characters a header cannot carry".into())
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let http = Client::builder()
            .user_agent(concat!("deploytime/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(global.timeout)
            .connect_timeout(global.timeout)
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api {
            base: global.url.trim_end_matches('/').to_owned(),
            http,
            retry_for: global.retry_for,
            timeout: global.timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn retry_for(&self) -> Duration {
        self.retry_for
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).query(query)
    }

    /// Stores one event, retrying for up to `budget`. Every attempt sends the same
    /// `event_id`, so the server stores the event once however often it arrives.
    /// Returns the server's answer (`event` and `deployment`), or `None` when a
    /// 2xx came with a body that cannot be read: the event is stored all the same.
    pub fn post_event(
        &self,
        event: &EventBody,
        budget: Duration,
    ) -> Result<Option<StoreResponse>, Failure> {
        let url = format!("{}{}", self.base, paths::EVENTS);
        let what = format!("sending the {} of {}", event.phase, event.component);
        with_retries(budget, &what, || {
            let response = self
                .http
                .post(&url)
                .json(event)
                .send()
                .map_err(transport_failure)?;
            let response = classify(response)?;
            Ok(response.json::<StoreResponse>().ok())
        })
    }

    /// A GET answered with JSON of type `T`, retried like events are.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Failure> {
        self.get_json_within(path, query, self.retry_for)
    }

    /// A GET answered with JSON of type `T`, retried for `budget` at most.
    pub fn get_json_within<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        budget: Duration,
    ) -> Result<T, Failure> {
        with_retries(budget, &format!("reading {path}"), || {
            let response = self.get(path, query).send().map_err(transport_failure)?;
            classify(response)?
                .json::<T>()
                .map_err(|e| Failure::Transient {
                    cause: format!("the server's answer to {path} cannot be read: {e}"),
                    retry_after: None,
                })
        })
    }

    /// A POST of `body` as JSON, answered with JSON of type `T`, retried for
    /// `budget` like events are: only for calls the server answers the same
    /// however often they arrive (registering a release is answered with its
    /// current state).
    pub fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        budget: Duration,
    ) -> Result<T, Failure> {
        let url = format!("{}{path}", self.base);
        with_retries(budget, &format!("sending to {path}"), || {
            let response = self
                .http
                .post(&url)
                .json(body)
                .send()
                .map_err(transport_failure)?;
            read_json(classify(response)?, path)
        })
    }

    /// A long poll: a GET of `path` with `?wait=` (whole seconds, what
    /// `wait()` says at each attempt; none when it is under a second), which
    /// the server holds until something changes or the wait passes. The
    /// request may take `--timeout` on top of its wait. Transient failures are
    /// retried for `budget`.
    pub fn get_json_waiting<T: DeserializeOwned>(
        &self,
        path: &str,
        wait: impl Fn() -> Duration,
        budget: Duration,
    ) -> Result<T, Failure> {
        with_retries(budget, &format!("reading {path}"), || {
            let wait = Duration::from_secs(wait().as_secs());
            let query: Vec<(&str, String)> = if wait.is_zero() {
                Vec::new()
            } else {
                vec![("wait", format!("{}s", wait.as_secs()))]
            };
            let response = self
                .get(path, &query)
                .timeout(self.timeout + wait)
                .send()
                .map_err(transport_failure)?;
            read_json(classify(response)?, path)
        })
    }

    /// A PATCH of `body` as JSON, sent once (a correction is not retried: its
    /// `If-Match` makes a repeat a conflict, not a second change), answered
    /// with JSON of type `T`.
    pub fn patch_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        if_match: &str,
    ) -> Result<T, Failure> {
        let response = self
            .http
            .patch(format!("{}{path}", self.base))
            .header(header::IF_MATCH, if_match)
            .json(body)
            .send()
            .map_err(transport_failure)?;
        classify(response)?
            .json::<T>()
            .map_err(|e| Failure::Transient {
                cause: format!("the server's answer to {path} cannot be read: {e}"),
                retry_after: None,
            })
    }

    /// A GET whose body is streamed to the caller (CSV exports, which may be long:
    /// the per-request timeout does not apply to them, only to connecting).
    pub fn get_stream(&self, path: &str, query: &[(&str, String)]) -> Result<Response, Failure> {
        with_retries(self.retry_for, &format!("reading {path}"), || {
            let response = self
                .get(path, query)
                .timeout(EXPORT_TIMEOUT)
                .send()
                .map_err(transport_failure)?;
            classify(response)
        })
    }
}

/// A success's body as `T`; one that cannot be read is worth another try.
fn read_json<T: DeserializeOwned>(response: Response, path: &str) -> Result<T, Failure> {
    response.json::<T>().map_err(|e| Failure::Transient {
        cause: format!("the server's answer to {path} cannot be read: {e}"),
        retry_after: None,
    })
}

/// How long a streamed export may take in all.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3600);

/// Retries `attempt` on transient failures with exponential backoff and full
/// jitter until it succeeds or `budget` has passed (the last attempt is made
/// when the budget runs out); a `Retry-After` from the server lengthens the
/// wait, never beyond the budget.
fn with_retries<T>(
    budget: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let deadline = Instant::now() + budget;
    let retry_after: Rc<Cell<Option<Duration>>> = Rc::default();
    let hint = Rc::clone(&retry_after);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(4))
        .with_jitter()
        .without_max_times();
    let mut warned = false;
    (move || {
        let result = attempt();
        if let Err(Failure::Transient { retry_after, .. }) = &result {
            hint.set(*retry_after);
        }
        result
    })
    .retry(backoff)
    .sleep(move |delay: Duration| {
        let delay = retry_after.take().map_or(delay, |asked| asked.max(delay));
        std::thread::sleep(delay.min(deadline.saturating_duration_since(Instant::now())));
    })
    .when(|failure| matches!(failure, Failure::Transient { .. }) && Instant::now() < deadline)
    .notify(|failure, _| {
        if !warned {
            warned = true;
            eprintln!(
                "deploytime: warning: {what}: {failure}; retrying for up to {}",
                humantime::format_duration(budget)
            );
        }
    })
    .call()
}

fn transport_failure(error: reqwest::Error) -> Failure {
    Failure::Transient {
        cause: error_chain(&error),
        retry_after: None,
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending
/// request") says little without the cause ("Connection refused").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Sorts an answer into success, transient failure and refusal.
fn classify(response: Response) -> Result<Response, Failure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let problem = read_problem(response);
        return Err(Failure::Transient {
            cause: format!("the server answered {problem}"),
            retry_after,
        });
    }
    if status.is_client_error() {
        return Err(Failure::Refused(Box::new(read_problem(response))));
    }
    Err(Failure::Transient {
        cause: format!("unexpected answer {status}"),
        retry_after: None,
    })
}
