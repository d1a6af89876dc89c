//! Asking the approver source who approves a release.

use std::time::Duration;

use deploytime_core::release::{Approver, ReleaseKey, approvers::parse_source};
use futures_util::StreamExt;

/// The most of a source's answer that is read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What asking the source came to.
#[derive(Debug)]
pub(super) enum Answer {
    Approvers(Vec<Approver>),
    /// The release cannot be approved by anyone the source names: it fails.
    Refused(String),
    /// The source could not answer now (down, slow, 5xx, 429): try again later.
    Unavailable(String),
}

/// The source's URL for one release: `{release_id}`, `{team_project}` and
/// `{release_name}` replaced by the release's, each escaped for a URL.
pub(super) fn url_for(template: &str, key: &ReleaseKey, release_name: &str) -> String {
    let escape = |value: &str| {
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    template
        .replace("{release_id}", &escape(&key.release_id))
        .replace("{team_project}", &escape(&key.team_project))
        .replace("{release_name}", &escape(release_name))
}

/// Asks the source once, within `timeout`.
pub(super) async fn ask(client: &reqwest::Client, url: &str, timeout: Duration) -> Answer {
    let response = match client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return Answer::Unavailable(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            ));
        }
        Err(e) => return Answer::Unavailable(format!("cannot reach it ({})", without_url(e))),
    };
    let status = response.status();
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        return Answer::Unavailable(format!("it answered {status}"));
    }
    if !status.is_success() {
        return Answer::Refused(format!("the approver source answered {status}"));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) if body.len() + bytes.len() <= MAX_ANSWER_BYTES => {
                body.extend_from_slice(&bytes)
            }
            Ok(_) => {
                return Answer::Refused(format!(
                    "the approver source's answer is over {MAX_ANSWER_BYTES} bytes"
                ));
            }
            Err(e) if e.is_timeout() => {
                return Answer::Unavailable("its answer did not arrive in time".into());
            }
            Err(e) => {
                return Answer::Unavailable(format!("its answer broke off ({})", without_url(e)));
            }
        }
    }
    match parse_source(&body) {
        Ok(approvers) => Answer::Approvers(approvers),
        Err(e) => Answer::Refused(e.to_string()),
    }
}

/// reqwest's message with its causes (anyhow's alternate form joins them),
/// without the URL it adds (the URL is in the settings; the audit need not
/// repeat it with every failure).
fn without_url(error: reqwest::Error) -> String {
    format!("{:#}", anyhow::Error::new(error.without_url()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_is_put_into_the_url_escaped() {
        let key = ReleaseKey {
            team_project: "Dev X".into(),
            release_id: "386".into(),
        };
        assert_eq!(
            url_for(
                "http://dir/approvers?project={team_project}&release={release_id}&n={release_name}",
                &key,
                "a&b"
            ),
            "http://dir/approvers?project=Dev%20X&release=386&n=a%26b"
        );
    }
}
