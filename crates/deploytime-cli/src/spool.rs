//! The spool: events the server has not acknowledged yet.
//!
//! One JSON line per event in `spool.jsonl`. Every change happens under an
//! exclusive lock on a separate `spool.jsonl.lock` file, which is never replaced,
//! so two processes appending at once, or one appending while another flushes,
//! cannot lose a line. Appends are fsynced before the caller is told the event is
//! safe. A flush sends events oldest first and removes an event only once the
//! server has acknowledged it; a crash mid-flush re-sends some events, which the
//! server recognises by their `event_id` and stores once.
//!
//! Events the server refuses for what they say (409, 422, ...) cannot succeed
//! by retrying: they move to `spool.jsonl.rejected` with the server's reason, so
//! nothing is ever thrown away. An event refused because of its sender (401,
//! 403, 404: a wrong token or URL, a token scoped to other components) stays in
//! the spool, and the flush goes on with the next one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use deploytime_core::Phase;
use deploytime_core::wire::{EventBody, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{Api, Failure, refuses_the_sender};

/// One line of the spool.
#[derive(Debug, Serialize, Deserialize)]
pub struct SpooledEvent {
    /// When the event was given up on for now.
    pub spooled_at: String,
    /// The event, exactly as it will be sent.
    pub event: EventBody,
}

/// One line of the rejected file.
#[derive(Debug, Serialize)]
struct RejectedEvent<'a> {
    rejected_at: String,
    reason: String,
    /// The spool line as it was (an event, or text that could not be read).
    line: &'a str,
}

#[derive(Debug, Clone)]
pub struct Spool {
    path: PathBuf,
}

/// Whether a flush waits for another process that holds the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Yes,
    No,
}

#[derive(Debug, Default)]
pub struct FlushReport {
    pub delivered: usize,
    pub rejected: Vec<(EventBody, Problem)>,
    pub unreadable: usize,
    pub remaining: usize,
    /// Why the flush stopped early, when it did.
    pub stopped_by: Option<String>,
    /// The server refused the credentials or the address (401, 403, 404...) for
    /// at least one event, which was kept; the last such refusal.
    pub sender_refused: Option<Box<Problem>>,
    /// Another process was flushing; nothing was done.
    pub busy: bool,
}

impl Spool {
    pub fn new(path: Option<PathBuf>) -> Spool {
        Spool {
            path: path.unwrap_or_else(default_path),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rejected_path(&self) -> PathBuf {
        sibling(&self.path, ".rejected")
    }

    fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock")
    }

    /// Takes the spool's lock; `None` when `wait` is `No` and someone holds it.
    fn lock(&self, wait: Wait) -> io::Result<Option<File>> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())?;
        match wait {
            Wait::Yes => file.lock()?,
            Wait::No => match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            },
        }
        Ok(Some(file))
    }

    /// Appends an event and makes it durable before returning.
    pub fn append(&self, event: &EventBody) -> io::Result<()> {
        let line = serde_json::to_string(&SpooledEvent {
            spooled_at: now(),
            event: event.clone(),
        })?;
        let _lock = self.lock(Wait::Yes)?;
        append_line(&self.path, &line)
    }

    /// The spool's lines as they are now (unreadable lines are skipped).
    pub fn pending(&self) -> io::Result<Vec<SpooledEvent>> {
        let _lock = self.lock(Wait::Yes)?;
        Ok(read_lines(&self.path)?
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// The deployment a spooled, unfinished `start` opened for this component and
    /// environment: a `finish` without `--deployment-id` must close that one.
    pub fn open_deployment(&self, component: &str, environment: &str) -> io::Result<Option<Uuid>> {
        let pending = self.pending()?;
        let finished: Vec<Uuid> = pending
            .iter()
            .filter(|s| s.event.phase == Phase::Finish)
            .filter_map(|s| s.event.deployment_id)
            .collect();
        Ok(pending
            .iter()
            .rev()
            .filter(|s| {
                s.event.phase == Phase::Start
                    && s.event.component == component
                    && s.event.environment.as_deref() == Some(environment)
            })
            .filter_map(|s| s.event.deployment_id)
            .find(|id| !finished.contains(id)))
    }

    /// Sends the spooled events oldest first, one attempt each, stopping at the
    /// first one the server does not answer (the rest keep their order). The
    /// server pairs a start and a finish whichever arrives first, so an event
    /// kept back does not hold the others.
    pub fn flush(&self, api: &Api, wait: Wait) -> io::Result<FlushReport> {
        let mut report = FlushReport::default();
        let Some(_lock) = self.lock(wait)? else {
            report.busy = true;
            return Ok(report);
        };
        let lines = read_lines(&self.path)?;
        if lines.is_empty() {
            return Ok(report);
        }
        let mut keep: Vec<&str> = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            if report.stopped_by.is_some() {
                keep.extend(lines[index..].iter().map(String::as_str));
                break;
            }
            let spooled: SpooledEvent = match serde_json::from_str(line) {
                Ok(spooled) => spooled,
                Err(e) => {
                    self.reject(line, format!("unreadable spool line: {e}"))?;
                    report.unreadable += 1;
                    continue;
                }
            };
            match api.post_event(&spooled.event, std::time::Duration::ZERO) {
                Ok(_) => report.delivered += 1,
                Err(Failure::Refused(problem)) if refuses_the_sender(&problem) => {
                    // Kept, and the flush goes on: a token scoped to other
                    // components must not hold back the events it may send.
                    report.sender_refused = Some(problem);
                    keep.push(line);
                }
                Err(Failure::Refused(problem)) => {
                    self.reject(line, problem.to_string())?;
                    report.rejected.push((spooled.event, *problem));
                }
                Err(failure @ Failure::Transient { .. }) => {
                    report.stopped_by = Some(failure.to_string());
                    keep.push(line);
                }
            }
        }
        report.remaining = keep.len();
        self.replace(&keep)?;
        Ok(report)
    }

    fn reject(&self, line: &str, reason: String) -> io::Result<()> {
        let record = serde_json::to_string(&RejectedEvent {
            rejected_at: now(),
            reason,
            line,
        })?;
        append_line(&self.rejected_path(), &record)
    }

    /// Replaces the spool's content with `lines`, atomically and durably.
    fn replace(&self, lines: &[&str]) -> io::Result<()> {
        if lines.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => sync_dir(&self.path),
            };
        }
        let temporary = sibling(&self.path, ".tmp");
        let mut file = File::create(&temporary)?;
        for line in lines {
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
        }
        file.sync_all()?;
        fs::rename(&temporary, &self.path)?;
        sync_dir(&self.path)
    }
}

/// `$XDG_STATE_HOME/deploytime/spool.jsonl` (`~/.local/state/...`), or the cache
/// directory where there is no state directory (macOS, Windows).
pub fn default_path() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::cache_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("deploytime")
        .join("spool.jsonl")
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Appends one line with a single write and fsyncs it. A new file's directory
/// entry is synced too, or the file itself could vanish in a power cut.
fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let existed = path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut record = String::with_capacity(line.len() + 1);
    record.push_str(line);
    record.push('\n');
    file.write_all(record.as_bytes())?;
    file.sync_all()?;
    if !existed {
        sync_dir(path)?;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::EventArgs;
    use crate::event;
    use deploytime_core::Status;

    fn args(component: &str) -> EventArgs {
        EventArgs {
            component: component.into(),
            environment: "production".into(),
            version: None,
            owner: None,
            attributes: Vec::new(),
            deployment_id: None,
            no_ci_metadata: true,
            commits_since: None,
            no_commits: true,
            rollback: false,
            release: Default::default(),
        }
    }

    #[test]
    fn appended_events_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(Some(dir.path().join("nested/spool.jsonl")));
        let first = event::start(&args("api"), Vec::new());
        let second = event::finish(&args("api"), Status::Success, first.deployment_id);
        spool.append(&first).unwrap();
        spool.append(&second).unwrap();
        let pending: Vec<EventBody> = spool
            .pending()
            .unwrap()
            .into_iter()
            .map(|s| s.event)
            .collect();
        assert_eq!(pending, vec![first, second]);
    }

    #[test]
    fn concurrent_appenders_lose_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(Some(dir.path().join("spool.jsonl")));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        spool
                            .append(&event::start(&args("api"), Vec::new()))
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 200);
        let mut ids: Vec<Uuid> = pending.iter().filter_map(|s| s.event.event_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
    }

    #[test]
    fn lines_spooled_by_the_previous_version_read_back() {
        // Written by 0.1.0 before events were the API's own type.
        let line = r#"{"spooled_at":"2026-11-22T10:00:01.000000Z","event":{"event_id":"0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11","phase":"finish","component":"api","environment":"staging","status":"exit-2","deployment_id":"0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10","timestamp":"2026-11-22T10:00:00.123456Z","attributes":{"ci.run_id":"42"}}}"#;
        let spooled: SpooledEvent = serde_json::from_str(line).unwrap();
        assert_eq!(spooled.event.phase, Phase::Finish);
        assert_eq!(spooled.event.status, Some(Status::Failed("exit-2".into())));
        assert_eq!(spooled.event.environment.as_deref(), Some("staging"));
        assert_eq!(spooled.event.attributes["ci.run_id"], "42");
        // And it is sent as it was written.
        let sent = serde_json::to_value(&spooled.event).unwrap();
        let written: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(sent, written["event"]);
    }

    #[test]
    fn a_finish_finds_the_spooled_start_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(Some(dir.path().join("spool.jsonl")));
        assert_eq!(spool.open_deployment("api", "production").unwrap(), None);
        let closed = event::start(&args("api"), Vec::new());
        spool.append(&closed).unwrap();
        spool
            .append(&event::finish(
                &args("api"),
                Status::Success,
                closed.deployment_id,
            ))
            .unwrap();
        let open = event::start(&args("api"), Vec::new());
        spool.append(&open).unwrap();
        spool
            .append(&event::start(&args("web"), Vec::new()))
            .unwrap();
        assert_eq!(
            spool.open_deployment("api", "production").unwrap(),
            open.deployment_id
        );
        assert_eq!(spool.open_deployment("api", "staging").unwrap(), None);
    }
}
