//! `start`, `finish` and `flush`: getting events to the server, or into the spool
//! when the server cannot be reached, without ever failing a deploy for it
//! (unless `--strict` asks for that).

use deploytime_core::Phase;
use deploytime_core::wire::{EventBody, StoreResponse};
use uuid::Uuid;

use crate::api::{Api, Failure, refuses_the_sender};
use crate::cli::{FinishArgs, GlobalArgs, StartArgs};
use crate::commits;
use crate::error::Error;
use crate::event;
use crate::exit;
use crate::output::human_duration;
use crate::spool::{Spool, Wait};

/// What became of an event.
pub enum Delivery {
    /// The server stored it; its answer (`None`: stored, answer unreadable).
    Stored(Option<Box<StoreResponse>>),
    /// The server could not be reached; the event waits in the spool.
    Spooled { cause: String },
}

/// Sends an event with retries; when the server stays unreachable, spools it.
/// `Err` only for a refusal (4xx) or an event that could not even be spooled.
pub fn deliver(api: &Api, spool: &Spool, event: &EventBody) -> Result<Delivery, Error> {
    match api.post_event(event, api.retry_for()) {
        Ok(answer) => Ok(Delivery::Stored(answer.map(Box::new))),
        Err(Failure::Refused(problem)) if refuses_the_sender(&problem) => {
            // Credentials or address are wrong, not the event: keep it for later.
            match spool.append(event) {
                Ok(()) => Err(Error::RejectedSpooled {
                    problem,
                    spool: spool.path().to_owned(),
                }),
                Err(e) => {
                    eprintln!("deploytime: the server refused the call: {problem}");
                    Err(not_spooled(spool, event, e))
                }
            }
        }
        Err(Failure::Refused(problem)) => Err(Error::Rejected(problem)),
        Err(Failure::Transient { cause, .. }) => match spool.append(event) {
            Ok(()) => Ok(Delivery::Spooled { cause }),
            Err(e) => {
                eprintln!("deploytime: cannot reach the server: {cause}");
                Err(not_spooled(spool, event, e))
            }
        },
    }
}

/// Sends an event with retries and never spools it: for a `start` with
/// `--strict`, whose caller stops its pipeline when told the start failed. A
/// deploy that did not happen must not be recorded by a later flush.
fn deliver_or_fail(api: &Api, event: &EventBody) -> Result<Delivery, Error> {
    match api.post_event(event, api.retry_for()) {
        Ok(answer) => Ok(Delivery::Stored(answer.map(Box::new))),
        Err(Failure::Refused(problem)) => Err(Error::Rejected(problem)),
        Err(Failure::Transient { cause, .. }) => Err(Error::Unreachable {
            url: api.base().to_owned(),
            cause,
        }),
    }
}

/// The event could not be written to the spool: the job's log is the last place
/// it can survive.
fn not_spooled(spool: &Spool, event: &EventBody, error: std::io::Error) -> Error {
    let line = serde_json::to_string(event).unwrap_or_default();
    eprintln!(
        "deploytime: cannot write the spool {}; the event was: {line}",
        spool.path().display()
    );
    Error::NotSpooled(error)
}

/// Turns a delivery into the command's result: an unreachable server is a
/// warning, or with `--strict` an error.
pub fn settle(
    api: &Api,
    spool: &Spool,
    strict: bool,
    result: Result<Delivery, Error>,
    describe: impl FnOnce(&StoreResponse) -> String,
) -> Result<(), Error> {
    match result {
        Ok(Delivery::Stored(Some(answer))) => {
            eprintln!("deploytime: {}", describe(&answer));
            Ok(())
        }
        Ok(Delivery::Stored(None)) => {
            eprintln!("deploytime: stored (the server's answer could not be read)");
            Ok(())
        }
        Ok(Delivery::Spooled { cause }) => {
            let error = Error::UnreachableSpooled {
                url: api.base().to_owned(),
                cause,
                spool: spool.path().to_owned(),
            };
            if strict {
                Err(error)
            } else {
                eprintln!("deploytime: warning: {error}");
                Ok(())
            }
        }
        Err(error @ Error::NotSpooled(_)) if !strict => {
            eprintln!("deploytime: warning: {error}");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// `started api in production (deployment …)`.
pub fn describe_stored(answer: &StoreResponse) -> String {
    let deployment = &answer.deployment;
    let mut text = format!(
        "{} {} in {}",
        match answer.event.phase {
            Phase::Start => "started",
            Phase::Finish => "finished",
        },
        deployment.component,
        deployment.environment,
    );
    if let Some(status) = &deployment.status {
        text.push_str(&format!(": {status}"));
    }
    if let Some(seconds) = deployment.duration_seconds {
        text.push_str(&format!(" after {}", human_duration(seconds)));
    }
    text.push_str(&format!(" (deployment {})", deployment.id));
    text
}

pub fn start(api: &Api, spool: &Spool, global: &GlobalArgs, args: StartArgs) -> Result<u8, Error> {
    let event = event::start(&args.event, commits::collect(api, &args.event));
    let result = if global.strict {
        deliver_or_fail(api, &event)
    } else {
        deliver(api, spool, &event)
    };
    let kept = matches!(result, Ok(_) | Err(Error::RejectedSpooled { .. }));
    if kept && let Some(id) = event.deployment_id {
        // The id is the caller's handle on the deployment, stored or spooled.
        println!("{id}");
    }
    settle(api, spool, global.strict, result, describe_stored)?;
    Ok(exit::OK)
}

pub fn finish(
    api: &Api,
    spool: &Spool,
    global: &GlobalArgs,
    args: FinishArgs,
) -> Result<u8, Error> {
    let deployment_id = match args.event.deployment_id {
        Some(id) => Some(id),
        None => spooled_start(spool, &args.event.component, &args.event.environment),
    };
    let event = event::finish(&args.event, args.status, deployment_id);
    let result = deliver(api, spool, &event);
    settle(api, spool, global.strict, result, describe_stored)?;
    Ok(exit::OK)
}

/// The deployment opened by a `start` still waiting in the spool: the server
/// does not know it yet, so it could not pair a `finish` without its id.
fn spooled_start(spool: &Spool, component: &str, environment: &str) -> Option<Uuid> {
    spool
        .open_deployment(component, environment)
        .unwrap_or_else(|e| {
            eprintln!(
                "deploytime: warning: cannot read the spool {}: {e}",
                spool.path().display()
            );
            None
        })
}

/// Sends what the spool holds before this invocation's own work. Problems are
/// warnings: they must not stop the event at hand from being recorded.
pub fn flush_before(api: &Api, spool: &Spool) {
    match spool.flush(api, Wait::No) {
        Ok(report) => {
            print_report(spool, &report);
            if let Some(problem) = &report.sender_refused {
                eprintln!(
                    "deploytime: warning: the spooled events were not sent: the server refused the call: {problem}"
                );
            }
        }
        Err(e) => eprintln!(
            "deploytime: warning: cannot flush the spool {}: {e}",
            spool.path().display()
        ),
    }
}

fn print_report(spool: &Spool, report: &crate::spool::FlushReport) {
    if report.delivered > 0 {
        eprintln!(
            "deploytime: sent {} spooled event(s) from {}",
            report.delivered,
            spool.path().display()
        );
    }
    for (event, problem) in &report.rejected {
        eprintln!(
            "deploytime: warning: the server refused the spooled {} of {} (event {}): {problem}; it is kept in {}",
            event.phase,
            event.component,
            event.event_id.map(|id| id.to_string()).unwrap_or_default(),
            spool.rejected_path().display()
        );
    }
    if report.unreadable > 0 {
        eprintln!(
            "deploytime: warning: {} unreadable spool line(s) moved to {}",
            report.unreadable,
            spool.rejected_path().display()
        );
    }
}

/// `deploytime flush`: waits for any other flush, then sends everything.
pub fn flush(api: &Api, spool: &Spool) -> Result<u8, Error> {
    let report = spool.flush(api, Wait::Yes).map_err(|source| Error::Spool {
        path: spool.path().to_owned(),
        source,
    })?;
    print_report(spool, &report);
    if let Some(problem) = report.sender_refused {
        return Err(Error::FlushRefused {
            path: spool.path().to_owned(),
            problem,
        });
    }
    if let Some(cause) = report.stopped_by {
        return Err(Error::FlushIncomplete {
            path: spool.path().to_owned(),
            cause: format!("{} event(s) not sent: {cause}", report.remaining),
        });
    }
    if !report.rejected.is_empty() || report.unreadable > 0 {
        return Err(Error::FlushRejected {
            count: report.rejected.len() + report.unreadable,
            path: spool.rejected_path(),
        });
    }
    if report.delivered == 0 {
        eprintln!("deploytime: the spool is empty");
    }
    Ok(exit::OK)
}
