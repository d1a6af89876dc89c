//! `deploytime run`: a deployment recorded around a command.
//!
//! The start is sent on a thread of its own while the command already runs, so
//! an unreachable server never delays the deploy. SIGINT and SIGTERM are caught
//! before the command starts and forwarded to it; a deployment stopped that way
//! is finished as `cancelled`. `deploytime` exits with the command's own code.

use std::ffi::OsString;
use std::io;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deploytime_core::Status;

use crate::api::Api;
use crate::cli::{GlobalArgs, RunArgs};
use crate::commands::record::{deliver, describe_stored, settle};
use crate::commits;
use crate::error::Error;
use crate::event;
use crate::exit;
use crate::spool::Spool;

/// How the command ended.
struct Outcome {
    /// The code `deploytime run` exits with.
    code: u8,
    /// The finish status recorded.
    status: Status,
}

pub fn run(api: &Api, spool: &Spool, global: &GlobalArgs, args: RunArgs) -> Result<u8, Error> {
    let start = event::start(&args.event, commits::collect(api, &args.event));
    let deployment_id = start.deployment_id;
    let forwarder = SignalForwarder::install();
    let sending_start = {
        let (api, spool, start) = (api.clone(), spool.clone(), start.clone());
        let strict = global.strict;
        std::thread::spawn(move || {
            let delivery = deliver(&api, &spool, &start);
            settle(&api, &spool, strict, delivery, describe_stored)
        })
    };

    let outcome = run_command(&args.command, &forwarder);
    let cancelled = forwarder.stop();
    let status = if cancelled {
        Status::Cancelled
    } else {
        outcome.status.clone()
    };

    let start_recorded = sending_start.join().unwrap_or_else(|_| {
        Err(Error::Internal(
            "sending the start failed unexpectedly".into(),
        ))
    });
    let finish = event::finish(&args.event, status, deployment_id);
    let delivery = deliver(api, spool, &finish);
    let finish_recorded = settle(api, spool, global.strict, delivery, describe_stored);

    // The command's code is what the pipeline must see; a bookkeeping failure
    // overrides only a success, and only when --strict asks for it.
    let mut errors = [start_recorded.err(), finish_recorded.err()]
        .into_iter()
        .flatten();
    if global.strict
        && outcome.code == exit::OK
        && let Some(first) = errors.next()
    {
        for other in errors {
            eprintln!("deploytime: error: {other}");
        }
        return Err(first);
    }
    for error in errors {
        eprintln!("deploytime: error: {error}");
    }
    Ok(outcome.code)
}

fn run_command(command: &[OsString], forwarder: &SignalForwarder) -> Outcome {
    let Some((program, arguments)) = command.split_first() else {
        return Outcome {
            code: exit::USAGE,
            status: exit_status(exit::USAGE),
        };
    };
    if forwarder.cancelled() {
        // Stopped before the command even began: do not begin it.
        return Outcome {
            code: exit::SIGNAL_BASE + 15,
            status: Status::Cancelled,
        };
    }
    let mut child = match Command::new(program).args(arguments).spawn() {
        Ok(child) => child,
        Err(e) => {
            let code = if e.kind() == io::ErrorKind::NotFound {
                exit::COMMAND_NOT_FOUND
            } else {
                exit::COMMAND_NOT_EXECUTABLE
            };
            eprintln!(
                "deploytime: error: cannot run {}: {e}",
                program.to_string_lossy()
            );
            return Outcome {
                code,
                status: exit_status(code),
            };
        }
    };
    forwarder.forward_to(child.id());
    match child.wait() {
        Ok(status) => outcome(status),
        Err(e) => {
            eprintln!("deploytime: error: lost track of the command: {e}");
            Outcome {
                code: exit::FAILURE,
                status: exit_status(exit::FAILURE),
            }
        }
    }
}

fn outcome(status: ExitStatus) -> Outcome {
    let code = match status.code() {
        Some(code) => u8::try_from(code & 0xff).unwrap_or(exit::FAILURE),
        None => signal_code(&status),
    };
    Outcome {
        code,
        status: if code == exit::OK {
            Status::Success
        } else {
            exit_status(code)
        },
    }
}

/// The finish status of a command that exited with `code`: `exit-N`.
fn exit_status(code: u8) -> Status {
    Status::Failed(format!("exit-{code}"))
}

#[cfg(unix)]
fn signal_code(status: &ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    status
        .signal()
        .and_then(|signal| u8::try_from(signal).ok())
        .map_or(exit::FAILURE, |signal| {
            exit::SIGNAL_BASE.saturating_add(signal)
        })
}

#[cfg(not(unix))]
fn signal_code(_: &ExitStatus) -> u8 {
    exit::FAILURE
}

/// Catches SIGINT/SIGTERM from before the command starts until it ends, and
/// passes them on to it.
#[cfg(unix)]
struct SignalForwarder {
    cancelled: Arc<AtomicBool>,
    child: Arc<std::sync::Mutex<Forwarding>>,
    handle: Option<signal_hook::iterator::Handle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Where a signal goes, and one that came before there was anywhere to send
/// it. Both are read and written under one lock, so a signal that arrives as
/// the command starts is passed on exactly once, as the signal it was.
#[cfg(unix)]
#[derive(Default)]
struct Forwarding {
    pid: Option<i32>,
    pending: Option<nix::sys::signal::Signal>,
}

#[cfg(unix)]
impl Forwarding {
    fn send(pid: i32, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

#[cfg(unix)]
impl SignalForwarder {
    fn install() -> SignalForwarder {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::iterator::exfiltrator::WithOrigin;
        use signal_hook::low_level::siginfo::Cause;
        let cancelled = Arc::new(AtomicBool::new(false));
        let child: Arc<std::sync::Mutex<Forwarding>> = Arc::default();
        let mut forwarder = SignalForwarder {
            cancelled: Arc::clone(&cancelled),
            child: Arc::clone(&child),
            handle: None,
            thread: None,
        };
        let mut signals =
            match signal_hook::iterator::SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM]) {
                Ok(signals) => signals,
                Err(e) => {
                    eprintln!("deploytime: warning: cannot catch SIGINT/SIGTERM: {e}");
                    return forwarder;
                }
            };
        forwarder.handle = Some(signals.handle());
        forwarder.thread = Some(std::thread::spawn(move || {
            for origin in signals.forever() {
                cancelled.store(true, Ordering::SeqCst);
                // A Ctrl-C at a terminal comes from the kernel to the whole
                // foreground process group, the command included. Passing it on
                // would make it a second Ctrl-C, which some tools take as
                // "abort at once".
                let from_terminal =
                    origin.signal == SIGINT && matches!(origin.cause, Cause::Kernel);
                let Ok(signal) = nix::sys::signal::Signal::try_from(origin.signal) else {
                    continue;
                };
                let mut forwarding = child
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match forwarding.pid {
                    Some(_) if from_terminal => {}
                    Some(pid) => Forwarding::send(pid, signal),
                    // The command is not started yet (so even a Ctrl-C did not
                    // reach it): it gets the signal as soon as it is
                    // (`forward_to`).
                    None => forwarding.pending = Some(signal),
                }
            }
        }));
        forwarder
    }

    /// From now on signals go to this process; one that came before is passed on
    /// at once.
    fn forward_to(&self, pid: u32) {
        let Ok(pid) = i32::try_from(pid) else { return };
        let mut forwarding = self
            .child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        forwarding.pid = Some(pid);
        if let Some(signal) = forwarding.pending.take() {
            Forwarding::send(pid, signal);
        }
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Stops forwarding (the command has ended) and says whether a signal came.
    fn stop(mut self) -> bool {
        if let Ok(mut forwarding) = self.child.lock() {
            forwarding.pid = None;
        }
        if let Some(handle) = self.handle.take() {
            handle.close();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.cancelled()
    }
}

#[cfg(not(unix))]
struct SignalForwarder {
    cancelled: Arc<AtomicBool>,
}

#[cfg(not(unix))]
impl SignalForwarder {
    fn install() -> SignalForwarder {
        SignalForwarder {
            cancelled: Arc::default(),
        }
    }
    fn forward_to(&self, _: u32) {}
    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
    fn stop(self) -> bool {
        self.cancelled()
    }
}
