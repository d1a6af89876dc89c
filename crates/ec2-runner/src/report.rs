//! Records a run as a deploytime deployment: a `start` event at launch and a
//! `finish` event at termination. Reporting is a side channel: any failure is
//! a warning on stderr and never fails the launch.

use std::collections::BTreeMap;
use std::time::Duration;

use deploytime_core::wire::{EventBody, paths};
use deploytime_core::{Phase, Status};
use uuid::Uuid;

pub struct Reporter {
    /// `Err` keeps why the HTTP client could not be built, to warn on each send.
    http: Result<reqwest::Client, String>,
    events_url: String,
    component: String,
    deployment_id: Uuid,
}

impl Reporter {
    /// `base_url` is the deploytime server, e.g. `http://localhost:8080`.
    pub fn new(base_url: &str, name: &str, deployment_id: Uuid) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| err.to_string());
        Self {
            http,
            events_url: format!("{}{}", base_url.trim_end_matches('/'), paths::EVENTS),
            component: format!("ec2-runner/{name}"),
            deployment_id,
        }
    }

    fn event(
        &self,
        phase: Phase,
        status: Option<Status>,
        attributes: &[(&str, &str)],
    ) -> EventBody {
        EventBody {
            component: self.component.clone(),
            phase,
            status,
            environment: None,
            version: None,
            owner: None,
            deployment_id: Some(self.deployment_id),
            event_id: Some(Uuid::now_v7()),
            timestamp: None,
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            commits: Vec::new(),
            rollback: false,
        }
    }

    pub fn start_event(&self, instance_id: &str, script_sha256: &str) -> EventBody {
        self.event(
            Phase::Start,
            None,
            &[
                ("instance_id", instance_id),
                ("script_sha256", script_sha256),
            ],
        )
    }

    pub fn finish_event(&self, status: Status, instance_id: &str) -> EventBody {
        self.event(Phase::Finish, Some(status), &[("instance_id", instance_id)])
    }

    /// Sends one event; warns on stderr if it did not arrive.
    pub async fn send(&self, event: &EventBody) {
        let http = match &self.http {
            Ok(http) => http,
            Err(err) => {
                eprintln!("ec2-runner: warning: cannot report to deploytime: {err}");
                return;
            }
        };
        let result = http.post(&self.events_url).json(event).send().await;
        match result {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                eprintln!(
                    "ec2-runner: warning: deploytime at {} answered {status}: {body}",
                    self.events_url
                );
            }
            Err(err) => {
                let mut text = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                eprintln!(
                    "ec2-runner: warning: could not report to deploytime at {}: {text}",
                    self.events_url
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pair_by_deployment_id() {
        let id = Uuid::now_v7();
        let reporter = Reporter::new("http://deploytime.example/", "xyz", id);
        assert_eq!(
            reporter.events_url,
            "http://deploytime.example/api/v1/events"
        );
        let start = serde_json::to_value(reporter.start_event("i-0abc", "feed")).unwrap();
        let finish =
            serde_json::to_value(reporter.finish_event(Status::Success, "i-0abc")).unwrap();
        assert_eq!(start["component"], "ec2-runner/xyz");
        assert_eq!(start["phase"], "start");
        assert_eq!(start["attributes"]["instance_id"], "i-0abc");
        assert_eq!(finish["phase"], "finish");
        assert_eq!(finish["status"], "success");
        assert_eq!(start["deployment_id"], id.to_string());
        assert_eq!(finish["deployment_id"], id.to_string());
        assert_ne!(start["event_id"], finish["event_id"]);
    }
}
