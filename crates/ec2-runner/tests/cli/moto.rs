//! Behaviour against moto, a local EC2-compatible server: each test starts its
//! own `moto_server` on a free loopback port with dummy credentials, so tests
//! are isolated from each other and never reach AWS. A missing moto fails the
//! tests: `bash .ci/checks/ec2-runner.sh` installs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{Credentials, Region};
use aws_sdk_ec2::types::{InstanceAttributeName, InstanceLifecycleType, InstanceStateName};
use base64::Engine as _;
use predicates::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{BIN, code, ec2_runner, isolate, repo_root};

const REGION: &str = "us-east-1";

struct Moto {
    child: Child,
    endpoint: String,
    _log_dir: tempfile::TempDir,
}

fn moto_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("moto_server"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "feature moto-tests is on but moto_server was not found: set MOTO_SERVER or put it \
                 on PATH (bash .ci/checks/ec2-runner.sh installs it)"
            )
        })
}

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(log_dir.path().join("moto.log")).unwrap();
        let mut child = Command::new(moto_server_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Like EC2, reject RunInstances with an unknown image.
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start moto_server: {err}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        // Readiness poll: moto takes a variable time to import; ask it until it
        // answers rather than guessing a delay.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(log_dir.path().join("moto.log")).unwrap();
                panic!("moto_server exited with {status} before answering:\n{log}");
            }
            if http_get_ok(port) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            endpoint,
            _log_dir: log_dir,
        }
    }

    fn client(&self) -> Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .endpoint_url(&self.endpoint)
            .build();
        Client::from_conf(config)
    }

    /// The binary pointed at this moto with dummy credentials.
    fn ec2_runner(&self) -> assert_cmd::Command {
        let mut cmd = ec2_runner();
        self.configure(&mut cmd);
        cmd
    }

    fn configure<C: CommandLike>(&self, cmd: &mut C) {
        cmd.set_env("AWS_ACCESS_KEY_ID", "testing");
        cmd.set_env("AWS_SECRET_ACCESS_KEY", "testing");
        cmd.set_args(&["--region", REGION, "--endpoint-url", &self.endpoint]);
    }

    /// Launches with the CLI and returns the instance id it printed.
    fn launch(&self, args: &[&str]) -> String {
        let output = self
            .ec2_runner()
            .arg("launch")
            .args(args)
            .assert()
            .code(code::SUCCESS);
        let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();
        let id = stdout.trim().to_owned();
        assert!(
            id.starts_with("i-"),
            "launch prints the instance id, got {stdout:?}"
        );
        id
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait CommandLike {
    fn set_env(&mut self, key: &str, value: &str);
    fn set_args(&mut self, args: &[&str]);
}
impl CommandLike for assert_cmd::Command {
    fn set_env(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }
    fn set_args(&mut self, args: &[&str]) {
        self.args(args);
    }
}
impl CommandLike for Command {
    fn set_env(&mut self, key: &str, value: &str) {
        self.env(key, value);
    }
    fn set_args(&mut self, args: &[&str]) {
        self.args(args);
    }
}

fn http_get_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).is_ok() && status.starts_with("HTTP/1.1 200")
}

/// A minimal stand-in for the deploytime server: records each POST and
/// answers 201 with a JSON body.
struct Recorder {
    url: String,
    requests: mpsc::Receiver<(String, Value)>,
}

impl Recorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sender, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let mut stream = reader.into_inner();
                let answer = r#"{"ok":true}"#;
                write!(
                    stream,
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .unwrap();
                let body = serde_json::from_slice(&body).unwrap();
                if sender.send((request_line.trim().to_owned(), body)).is_err() {
                    return;
                }
            }
        });
        Self { url, requests }
    }

    fn next(&self) -> Value {
        let (request_line, body) = self
            .requests
            .recv_timeout(Duration::from_secs(30))
            .expect("an event was reported");
        assert_eq!(request_line, "POST /api/v1/events HTTP/1.1");
        body
    }
}

fn xyz_sh() -> String {
    std::fs::read_to_string(repo_root().join("deploy/ec2/xyz.sh")).unwrap()
}

async fn attribute(client: &Client, id: &str, name: InstanceAttributeName) -> String {
    let output = client
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(name)
        .send()
        .await
        .unwrap();
    output
        .user_data()
        .or(output.instance_initiated_shutdown_behavior())
        .and_then(|value| value.value())
        .unwrap()
        .to_owned()
}

async fn describe(client: &Client, id: &str) -> aws_sdk_ec2::types::Instance {
    let output = client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    output.reservations()[0].instances()[0].clone()
}

fn tag<'a>(instance: &'a aws_sdk_ec2::types::Instance, key: &str) -> Option<&'a str> {
    instance
        .tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

#[tokio::test]
async fn launch_creates_a_self_terminating_spot_instance_running_xyz() {
    let moto = Moto::start();
    let recorder = Recorder::start();
    let id = moto.launch(&["--tag", "team=ops", "--report-to", &recorder.url]);
    let client = moto.client();

    let instance = describe(&client, &id).await;
    assert_eq!(
        instance.instance_lifecycle(),
        Some(&InstanceLifecycleType::Spot)
    );
    let image = client
        .describe_images()
        .image_ids(instance.image_id().unwrap())
        .send()
        .await
        .unwrap();
    let image_name = image.images()[0].name().unwrap();
    assert!(
        image_name.starts_with("al2023-ami-2023") && image_name.ends_with("x86_64"),
        "the default image is Amazon Linux 2023 x86_64, got {image_name}"
    );

    let sha = hex::encode(Sha256::digest(xyz_sh().as_bytes()));
    assert_eq!(tag(&instance, "Name"), Some("xyz"));
    assert_eq!(tag(&instance, "managed-by"), Some("ec2-runner"));
    assert_eq!(tag(&instance, "ec2-runner:script"), Some("xyz.sh"));
    assert_eq!(
        tag(&instance, "ec2-runner:script-sha256"),
        Some(sha.as_str())
    );
    assert_eq!(tag(&instance, "team"), Some("ops"));

    assert_eq!(
        attribute(
            &client,
            &id,
            InstanceAttributeName::InstanceInitiatedShutdownBehavior
        )
        .await,
        "terminate"
    );
    let user_data = attribute(&client, &id, InstanceAttributeName::UserData).await;
    let wrapper = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(user_data)
            .unwrap(),
    )
    .unwrap();
    assert!(wrapper.starts_with("#!/bin/bash\n"), "{wrapper}");
    assert!(wrapper.contains("script=\"$work_dir/xyz.sh\""), "{wrapper}");
    assert!(
        wrapper.contains(&xyz_sh()),
        "the script is embedded verbatim"
    );
    assert!(
        wrapper.contains("max_runtime_seconds=900"),
        "default max runtime 15m"
    );
    assert!(wrapper.contains("shutdown -h now"));

    let start = recorder.next();
    assert_eq!(start["component"], "ec2-runner/xyz");
    assert_eq!(start["phase"], "start");
    assert_eq!(start["attributes"]["instance_id"], id.as_str());
    assert!(uuid::Uuid::parse_str(start["deployment_id"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(start["event_id"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn status_and_terminate_act_on_ec2_runner_instances_only() {
    let moto = Moto::start();
    // Reporting to a dead server only warns.
    let output = moto
        .ec2_runner()
        .args(["launch", "--on-demand", "--max-runtime", "5m"])
        .args(["--report-to", "http://127.0.0.1:9"])
        .assert()
        .code(code::SUCCESS)
        .stderr(predicate::str::contains(
            "warning: could not report to deploytime at http://127.0.0.1:9/api/v1/events",
        ));
    let id = String::from_utf8(output.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    let client = moto.client();
    assert_eq!(describe(&client, &id).await.instance_lifecycle(), None);

    moto.ec2_runner()
        .args(["status", &id])
        .assert()
        .code(code::SUCCESS)
        .stdout(predicate::str::contains(format!("instance:      {id}")))
        .stdout(predicate::str::is_match(r"state:\s+(pending|running)").unwrap())
        .stdout(predicate::str::is_match(r"market:\s+on-demand").unwrap())
        .stdout(predicate::str::is_match(r"managed by:\s+ec2-runner").unwrap());

    // An instance someone else launched is left alone.
    let foreign = client
        .run_instances()
        .image_id(describe(&client, &id).await.image_id().unwrap())
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let foreign_id = foreign.instances()[0].instance_id().unwrap().to_owned();
    moto.ec2_runner()
        .args(["terminate", &foreign_id])
        .assert()
        .code(code::NOT_MANAGED)
        .stderr(predicate::str::contains("not tagged managed-by=ec2-runner"));
    let foreign_state = describe(&client, &foreign_id).await;
    assert_ne!(
        foreign_state.state().unwrap().name(),
        Some(&InstanceStateName::Terminated)
    );

    moto.ec2_runner()
        .args(["terminate", &id])
        .assert()
        .code(code::SUCCESS)
        .stdout(predicate::str::contains(format!("{id}: running -> ")));
    moto.ec2_runner()
        .args(["status", &id])
        .assert()
        .code(code::SUCCESS)
        .stdout(predicate::str::is_match(r"state:\s+terminated").unwrap());

    moto.ec2_runner()
        .args(["status", "i-0123456789abcdef0"])
        .assert()
        .code(code::INVALID_RESOURCE)
        .stderr(predicate::str::contains(
            "instance rejected by ec2:DescribeInstances",
        ));
}

#[tokio::test]
async fn wait_follows_the_instance_until_it_is_terminated() {
    let moto = Moto::start();
    let recorder = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr");
    let mut cmd = Command::new(BIN);
    isolate(&mut cmd);
    moto.configure(&mut cmd);
    let mut child = cmd
        .args([
            "launch",
            "--wait",
            "--timeout",
            "5m",
            "--report-to",
            &recorder.url,
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The first line is the instance id, printed as soon as it launched.
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    let id = first_line.trim().to_owned();
    assert!(id.starts_with("i-"), "{first_line:?}");
    let start = recorder.next();
    assert_eq!(start["phase"], "start");

    // The operator stops it early; the waiting launch must see it terminate.
    moto.ec2_runner()
        .args(["terminate", &id])
        .assert()
        .code(code::SUCCESS);

    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(
        status.code(),
        Some(code::SUCCESS),
        "stdout: {rest}\nstderr: {stderr}"
    );
    assert!(rest.contains(&format!("timeline of {id}:")), "{rest}");
    assert!(rest.contains("pending (launched)"), "{rest}");
    assert!(rest.contains("terminated"), "{rest}");
    assert!(rest.contains("console output"), "{rest}");

    let finish = recorder.next();
    assert_eq!(finish["phase"], "finish");
    assert_eq!(finish["component"], "ec2-runner/xyz");
    assert_eq!(finish["deployment_id"], start["deployment_id"]);
    assert_ne!(finish["event_id"], start["event_id"]);
    assert_eq!(
        finish["status"], "terminated-early",
        "a terminate call is not the script finishing"
    );
    assert_eq!(finish["attributes"]["instance_id"], id.as_str());
}

#[tokio::test]
async fn wait_gives_up_after_the_timeout() {
    let moto = Moto::start();
    let recorder = Recorder::start();
    let started = Instant::now();
    moto.ec2_runner()
        .args([
            "launch",
            "--wait",
            "--timeout",
            "2s",
            "--report-to",
            &recorder.url,
        ])
        .assert()
        .code(code::WAIT_TIMEOUT)
        .stderr(predicate::str::contains("gave up waiting for i-"))
        .stderr(predicate::str::contains("ec2-runner terminate i-"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(recorder.next()["phase"], "start");
    let finish = recorder.next();
    assert_eq!(finish["phase"], "finish");
    assert_eq!(finish["status"], "timeout");
}

#[tokio::test]
async fn dry_run_checks_without_launching() {
    let moto = Moto::start();
    moto.ec2_runner()
        .args(["launch", "--dry-run"])
        .assert()
        .code(code::SUCCESS)
        .stdout(predicate::str::starts_with(
            "dry run: ec2:RunInstances would have succeeded",
        ));
    let instances = moto.client().describe_instances().send().await.unwrap();
    assert!(instances.reservations().is_empty(), "nothing was launched");
}

#[tokio::test]
async fn unknown_resources_are_named_in_the_error() {
    let moto = Moto::start();
    moto.ec2_runner()
        .args(["launch", "--subnet-id", "subnet-00000000"])
        .assert()
        .code(code::INVALID_RESOURCE)
        .stdout("")
        .stderr(predicate::str::contains(
            "subnet rejected by ec2:RunInstances",
        ))
        .stderr(predicate::str::contains("hint:"));
    moto.ec2_runner()
        .args(["launch", "--ami", "ami-00000000000000000"])
        .assert()
        .code(code::INVALID_RESOURCE)
        .stderr(predicate::str::contains("AMI rejected by ec2:RunInstances"));
    let instances = moto.client().describe_instances().send().await.unwrap();
    assert!(instances.reservations().is_empty(), "nothing was launched");
}
