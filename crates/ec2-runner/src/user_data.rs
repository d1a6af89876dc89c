//! The user data ec2-runner sends: a bash wrapper that cloud-init runs once at
//! first boot. It writes the embedded script to disk, runs it with a deadline,
//! records its exit status, and powers the instance off whatever happens. The
//! instance is launched with shutdown behaviour `terminate`, so powering off
//! ends in termination and nothing is left running or billing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// EC2 refuses user data above 16 KiB, measured before base64 encoding.
pub const USER_DATA_LIMIT_BYTES: usize = 16 * 1024;

/// Grace period `timeout` gives the script after TERM before it sends KILL.
const KILL_AFTER_SECONDS: u64 = 10;

/// The script to run at boot, as read from the operator's disk.
#[derive(Debug, Clone)]
pub struct Script {
    /// File name used on the instance: the local name with anything outside
    /// `[A-Za-z0-9._-]` replaced, so it can appear in the wrapper unquoted.
    pub file_name: String,
    pub contents: String,
    /// SHA-256 of the file as read, hex encoded; tagged on the instance so a
    /// run can be traced back to the exact script it ran.
    pub sha256: String,
}

impl Script {
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::ReadScript {
            path: path.to_path_buf(),
            source,
        })?;
        let contents = String::from_utf8(bytes).map_err(|_| Error::ScriptNotUtf8 {
            path: path.to_path_buf(),
        })?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "script.sh".to_owned());
        Ok(Self::from_contents(&name, contents))
    }

    pub fn from_contents(name: &str, contents: String) -> Self {
        let file_name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let file_name = if file_name.trim_matches('.').is_empty() {
            "script.sh".to_owned()
        } else {
            file_name
        };
        let sha256 = hex::encode(Sha256::digest(contents.as_bytes()));
        Self {
            file_name,
            contents,
            sha256,
        }
    }

    /// The name without its extension (`xyz` for `xyz.sh`): the default run name.
    pub fn stem(&self) -> &str {
        match self.file_name.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() => stem,
            _ => &self.file_name,
        }
    }
}

/// Where the wrapper keeps its files on the instance. Production uses
/// [`WrapperLayout::default`]; tests point it into a temporary directory.
#[derive(Debug, Clone)]
pub struct WrapperLayout {
    pub work_dir: PathBuf,
    pub log_file: PathBuf,
    /// The serial console, so the output shows in `GetConsoleOutput`.
    pub console: PathBuf,
}

impl Default for WrapperLayout {
    fn default() -> Self {
        Self {
            work_dir: PathBuf::from("/opt/ec2-runner"),
            log_file: PathBuf::from("/var/log/ec2-runner.log"),
            console: PathBuf::from("/dev/console"),
        }
    }
}

/// User data ready to send: the wrapper text and its base64 form.
#[derive(Debug, Clone)]
pub struct UserData {
    pub text: String,
    pub base64: String,
}

/// Builds the user data for `script`, refusing it when it is over the EC2 limit
/// so the operator learns it before any API call.
pub fn build(script: &Script, max_runtime: Duration) -> Result<UserData, Error> {
    let text = render_wrapper(script, max_runtime, &WrapperLayout::default());
    if text.len() > USER_DATA_LIMIT_BYTES {
        return Err(Error::UserDataTooLarge {
            size: text.len(),
            limit: USER_DATA_LIMIT_BYTES,
            script: script.file_name.clone(),
        });
    }
    let base64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    Ok(UserData { text, base64 })
}

/// Single-quotes `value` for bash.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Renders the wrapper. Kept free of I/O so it can be tested by running it.
pub fn render_wrapper(script: &Script, max_runtime: Duration, layout: &WrapperLayout) -> String {
    let max_runtime_seconds = max_runtime.as_secs().max(1);
    // The system-level backstop fires after the in-wrapper deadline (and
    // `timeout`'s KILL grace) so the normal path can still record the status.
    let backstop_minutes = max_runtime_seconds.div_ceil(60) + 1;
    // A delimiter derived from the script's hash cannot plausibly occur in it.
    let delimiter = format!("EC2_RUNNER_SCRIPT_{}", &script.sha256[..16]);
    let mut contents = script.contents.clone();
    if !contents.ends_with('\n') {
        contents.push('\n');
    }
    let name = &script.file_name;
    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        r#"#!/bin/bash
# Generated by ec2-runner {version}: runs {name} once at boot, then powers the
# instance off. The instance was launched with shutdown behaviour "terminate",
# so powering off terminates it and nothing is left running.
set -u

work_dir={work_dir}
log_file={log_file}
console={console}
script="$work_dir/{name}"
max_runtime_seconds={max_runtime_seconds}

# Whatever happens below, even a failure of this wrapper itself, the instance
# powers off when the wrapper exits.
trap 'shutdown -h now "ec2-runner: {name} finished"' EXIT

# Safety net, scheduled before anything can hang: the system powers off shortly
# after the deadline even if this wrapper is killed or stuck.
shutdown -h +{backstop_minutes} "ec2-runner: max runtime reached" || true

log() {{
  printf '%s ec2-runner: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" | tee -a "$log_file" "$console" >/dev/null 2>&1
}}

mkdir -p "$work_dir" || exit 1
cat >"$script" <<'{delimiter}'
{contents}{delimiter}
chmod 0755 "$script" || exit 1

log "running {name} (sha256 {sha256}, max runtime ${{max_runtime_seconds}}s)"
# The script's output goes to the log file and the serial console.
timeout --kill-after={KILL_AFTER_SECONDS} "$max_runtime_seconds" "$script" 2>&1 | tee -a "$log_file" "$console" >/dev/null 2>&1
status=${{PIPESTATUS[0]}}
printf '%s\n' "$status" >"$work_dir/exit-status"
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  log "{name} stopped: max runtime of ${{max_runtime_seconds}}s reached (exit status $status)"
else
  log "{name} exited with status $status"
fi
log "shutting down"
exit "$status"
"#,
        version = env!("CARGO_PKG_VERSION"),
        work_dir = shell_quote(&layout.work_dir.to_string_lossy()),
        log_file = shell_quote(&layout.log_file.to_string_lossy()),
        console = shell_quote(&layout.console.to_string_lossy()),
        sha256 = script.sha256,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    /// A temporary instance root: the wrapper's files plus a `shutdown` stub on
    /// PATH that records its arguments instead of powering anything off.
    struct Sandbox {
        dir: tempfile::TempDir,
        layout: WrapperLayout,
    }

    struct Outcome {
        exit_code: Option<i32>,
        elapsed: Duration,
        shutdown_calls: Vec<String>,
    }

    impl Sandbox {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            let stub = bin.join("shutdown");
            std::fs::write(
                &stub,
                format!(
                    "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n",
                    dir.path().join("shutdown-calls").display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
            let layout = WrapperLayout {
                work_dir: dir.path().join("opt/ec2-runner"),
                log_file: dir.path().join("ec2-runner.log"),
                console: dir.path().join("console"),
            };
            Self { dir, layout }
        }

        fn run(&self, script: &Script, max_runtime: Duration) -> Outcome {
            let wrapper = self.dir.path().join("user-data");
            std::fs::write(&wrapper, render_wrapper(script, max_runtime, &self.layout)).unwrap();
            let path = format!(
                "{}:{}",
                self.dir.path().join("bin").display(),
                std::env::var("PATH").unwrap()
            );
            let started = Instant::now();
            let output = Command::new("bash")
                .arg(&wrapper)
                .env("PATH", path)
                .output()
                .unwrap();
            let shutdown_calls = std::fs::read_to_string(self.dir.path().join("shutdown-calls"))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            Outcome {
                exit_code: output.status.code(),
                elapsed: started.elapsed(),
                shutdown_calls,
            }
        }

        fn read(&self, path: &Path) -> String {
            std::fs::read_to_string(path).unwrap_or_default()
        }
    }

    fn assert_powered_off_last(outcome: &Outcome) {
        let last = outcome.shutdown_calls.last().map(String::as_str);
        assert!(
            last.is_some_and(|call| call.starts_with("-h now")),
            "the wrapper must end with `shutdown -h now`, calls were {:?}",
            outcome.shutdown_calls
        );
    }

    #[test]
    fn runs_the_script_records_its_status_and_powers_off() {
        let sandbox = Sandbox::new();
        let script = Script::from_contents(
            "xyz.sh",
            "#!/bin/bash\necho \"hello from $0 with 'quotes' and `backticks`\"\nexit 0\n".into(),
        );
        let outcome = sandbox.run(&script, Duration::from_secs(60));

        assert_eq!(outcome.exit_code, Some(0));
        let written = sandbox.read(&sandbox.layout.work_dir.join("xyz.sh"));
        assert_eq!(
            written, script.contents,
            "the script must be written byte for byte"
        );
        assert_eq!(
            sandbox.read(&sandbox.layout.work_dir.join("exit-status")),
            "0\n"
        );
        for output in [&sandbox.layout.log_file, &sandbox.layout.console] {
            let text = sandbox.read(output);
            assert!(text.contains("hello from"), "{output:?}: {text}");
            assert!(
                text.contains("xyz.sh exited with status 0"),
                "{output:?}: {text}"
            );
        }
        assert_eq!(
            outcome.shutdown_calls.first().map(String::as_str),
            Some("-h +2 ec2-runner: max runtime reached"),
            "the backstop is scheduled first"
        );
        assert_eq!(
            outcome.shutdown_calls.len(),
            2,
            "{:?}",
            outcome.shutdown_calls
        );
        assert_powered_off_last(&outcome);
    }

    #[test]
    fn powers_off_even_when_the_script_fails() {
        let sandbox = Sandbox::new();
        let script = Script::from_contents("xyz.sh", "#!/bin/bash\necho boom >&2\nexit 3\n".into());
        let outcome = sandbox.run(&script, Duration::from_secs(60));

        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(
            sandbox.read(&sandbox.layout.work_dir.join("exit-status")),
            "3\n"
        );
        let log = sandbox.read(&sandbox.layout.log_file);
        assert!(log.contains("boom"), "stderr goes to the log too: {log}");
        assert!(log.contains("xyz.sh exited with status 3"), "{log}");
        assert_powered_off_last(&outcome);
    }

    #[test]
    fn stops_a_hung_script_at_the_deadline_and_powers_off() {
        let sandbox = Sandbox::new();
        let script = Script::from_contents("xyz.sh", "#!/bin/bash\nsleep 30\n".into());
        let outcome = sandbox.run(&script, Duration::from_secs(1));

        assert!(
            outcome.elapsed < Duration::from_secs(15),
            "the deadline must stop the script, took {:?}",
            outcome.elapsed
        );
        assert_eq!(outcome.exit_code, Some(124), "timeout's status is recorded");
        assert_eq!(
            sandbox.read(&sandbox.layout.work_dir.join("exit-status")),
            "124\n"
        );
        assert!(
            sandbox
                .read(&sandbox.layout.log_file)
                .contains("max runtime of 1s reached")
        );
        assert_powered_off_last(&outcome);
    }

    #[test]
    fn powers_off_when_the_wrapper_itself_fails() {
        let sandbox = Sandbox::new();
        // A regular file where the work directory should go: mkdir fails.
        let blocker = sandbox.dir.path().join("blocker");
        std::fs::write(&blocker, "").unwrap();
        let sandbox = Sandbox {
            layout: WrapperLayout {
                work_dir: blocker.join("ec2-runner"),
                ..sandbox.layout.clone()
            },
            ..sandbox
        };
        let script = Script::from_contents("xyz.sh", "#!/bin/bash\ntrue\n".into());
        let outcome = sandbox.run(&script, Duration::from_secs(60));

        assert_ne!(outcome.exit_code, Some(0));
        assert_powered_off_last(&outcome);
    }

    #[test]
    fn refuses_user_data_over_the_ec2_limit() {
        let big =
            Script::from_contents("big.sh", format!("#!/bin/bash\n#{}\n", "x".repeat(17_000)));
        match build(&big, Duration::from_secs(900)) {
            Err(Error::UserDataTooLarge { size, limit, .. }) => {
                assert_eq!(limit, 16_384);
                assert!(size > limit);
            }
            other => panic!("expected UserDataTooLarge, got {other:?}"),
        }

        let fits =
            Script::from_contents("fits.sh", format!("#!/bin/bash\n#{}\n", "x".repeat(14_000)));
        let user_data = build(&fits, Duration::from_secs(900)).unwrap();
        assert!(user_data.text.len() <= USER_DATA_LIMIT_BYTES);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&user_data.base64)
            .unwrap();
        assert_eq!(decoded, user_data.text.as_bytes());
    }

    #[test]
    fn the_default_layout_writes_to_the_instance_paths() {
        let script = Script::from_contents("xyz.sh", "sleep 60\n".into());
        let text = build(&script, Duration::from_secs(15 * 60)).unwrap().text;
        assert!(text.starts_with("#!/bin/bash\n"));
        assert!(text.contains("script=\"$work_dir/xyz.sh\""));
        assert!(text.contains("work_dir='/opt/ec2-runner'"));
        assert!(text.contains("console='/dev/console'"));
        assert!(text.contains("max_runtime_seconds=900"));
        assert!(text.contains("shutdown -h +16 "));
    }

    #[test]
    fn file_names_are_made_safe_for_the_wrapper() {
        let script = Script::from_contents("my job's $(rm).sh", String::new());
        assert_eq!(script.file_name, "my_job_s___rm_.sh");
        assert_eq!(
            Script::from_contents("..", String::new()).file_name,
            "script.sh"
        );
        assert_eq!(Script::from_contents("xyz.sh", String::new()).stem(), "xyz");
    }
}
