//! ec2-runner launches one EC2 instance (spot by default) that runs a script at
//! boot and terminates itself when the script ends, then optionally follows it
//! to termination and records the run as a deploytime deployment.

pub mod cli;
pub mod ec2;
pub mod error;
pub mod report;
pub mod user_data;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};

use crate::cli::{AwsArgs, Cli, Command, LaunchArgs};
use crate::ec2::{LaunchSpec, Launched, Market, TimelineEntry, WaitOutcome};
use crate::error::{Error, exit_code};
use crate::report::Reporter;
use crate::user_data::Script;

/// How long `--wait` waits beyond the max runtime by default: boot, shutdown
/// and EC2's own state propagation.
const DEFAULT_WAIT_MARGIN: Duration = Duration::from_secs(10 * 60);

pub async fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Launch(args) => launch(&cli.aws, *args).await,
        Command::Status { instance_id } => status(&cli.aws, &instance_id).await,
        Command::Terminate { instance_id } => terminate(&cli.aws, &instance_id).await,
    }
}

async fn launch(aws: &AwsArgs, args: LaunchArgs) -> Result<ExitCode, Error> {
    // Local checks first: a bad script or tag is reported before any AWS call.
    let script = Script::read(&args.script)?;
    let user_data = user_data::build(&script, args.max_runtime)?;
    ec2::check_extra_tags(&args.tags)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| script.stem().to_owned());

    let client = ec2::connect(aws).await?;
    let image_id = match args.ami {
        Some(ami) => ami,
        None => ec2::latest_al2023_image(&client).await?,
    };
    let deployment_id = uuid::Uuid::now_v7();
    let spec = LaunchSpec {
        name: name.clone(),
        image_id,
        instance_type: args.instance_type,
        market: if args.on_demand {
            Market::OnDemand
        } else {
            Market::Spot {
                max_price: args.max_price,
            }
        },
        subnet_id: args.subnet_id,
        security_group_ids: args.security_group_ids,
        key_name: args.key_name,
        iam_instance_profile: args.iam_instance_profile,
        extra_tags: args.tags,
        script_file_name: script.file_name.clone(),
        script_sha256: script.sha256.clone(),
        user_data_base64: user_data.base64,
        client_token: deployment_id.to_string(),
        dry_run: args.dry_run,
    };
    let market = match spec.market {
        Market::Spot { .. } => "spot",
        Market::OnDemand => "on-demand",
    };

    let (instance_id, launch_time) = match ec2::launch(&client, &spec).await? {
        Launched::DryRunPassed => {
            println!(
                "dry run: ec2:RunInstances would have succeeded ({} {market}, image {}, {} bytes of user data)",
                spec.instance_type,
                spec.image_id,
                user_data.text.len()
            );
            return Ok(ExitCode::from(exit_code::SUCCESS));
        }
        Launched::Instance {
            instance_id,
            launch_time,
        } => (instance_id, launch_time.unwrap_or_else(Utc::now)),
    };
    // The id alone on stdout, so `id=$(ec2-runner launch)` works; the rest on stderr.
    println!("{instance_id}");
    eprintln!(
        "ec2-runner: launched {instance_id}: {} {market}, image {}, runs {} (sha256 {}), max runtime {}s",
        spec.instance_type,
        spec.image_id,
        script.file_name,
        script.sha256,
        args.max_runtime.as_secs()
    );

    let reporter = args
        .report_to
        .as_deref()
        .map(|url| Reporter::new(url, &name, deployment_id));
    if let Some(reporter) = &reporter {
        reporter
            .send(&reporter.start_event(&instance_id, &script.sha256))
            .await;
    }

    if !args.wait {
        eprintln!(
            "ec2-runner: follow it with `ec2-runner status {instance_id}`; stop it early with `ec2-runner terminate {instance_id}`"
        );
        return Ok(ExitCode::from(exit_code::SUCCESS));
    }

    let timeout = args
        .timeout
        .unwrap_or(args.max_runtime + DEFAULT_WAIT_MARGIN);
    let mut timeline = vec![TimelineEntry {
        at: launch_time,
        what: "pending (launched)".to_owned(),
    }];
    let progress = spinner();
    let outcome =
        ec2::follow_to_termination(&client, &instance_id, timeout, &progress, &mut timeline).await;
    progress.finish_and_clear();
    let outcome = outcome?;

    print_timeline(&instance_id, &mut timeline);
    if let Some(reporter) = &reporter {
        reporter
            .send(&reporter.finish_event(outcome.report_status(), &instance_id))
            .await;
    }
    match outcome {
        WaitOutcome::Terminated {
            reason_code,
            reason_message,
            ..
        } => {
            println!(
                "terminated: {}",
                reason_message
                    .or(reason_code)
                    .unwrap_or_else(|| "no reason given".to_owned())
            );
            print_console_output(&client, &instance_id).await;
            Ok(ExitCode::from(exit_code::SUCCESS))
        }
        WaitOutcome::TimedOut => Err(Error::WaitTimeout {
            instance_id,
            timeout,
        }),
        WaitOutcome::Other { state } => Err(Error::NotTerminated { instance_id, state }),
    }
}

/// A spinner on stderr; indicatif hides it when stderr is not a terminal, so
/// logs and pipes get no control characters.
fn spinner() -> indicatif::ProgressBar {
    let progress = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
        progress.set_style(style);
    }
    if std::io::stderr().is_terminal() {
        progress.enable_steady_tick(Duration::from_millis(120));
    }
    progress
}

fn print_timeline(instance_id: &str, timeline: &mut [TimelineEntry]) {
    timeline.sort_by_key(|entry| entry.at);
    let Some(start) = timeline.first().map(|entry| entry.at) else {
        return;
    };
    println!("timeline of {instance_id}:");
    for entry in timeline.iter() {
        println!(
            "  {}  +{:>5}s  {}",
            format_time(entry.at),
            (entry.at - start).num_seconds(),
            entry.what
        );
    }
}

fn format_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn print_console_output(client: &Client, instance_id: &str) {
    match ec2::console_output(client, instance_id).await {
        Some(text) if !text.trim().is_empty() => {
            println!("console output:");
            for line in text.lines() {
                println!("  {line}");
            }
        }
        _ => println!(
            "console output: not available (EC2 publishes it with a delay; try `aws ec2 get-console-output --instance-id {instance_id}`)"
        ),
    }
}

async fn status(aws: &AwsArgs, instance_id: &str) -> Result<ExitCode, Error> {
    let client = ec2::connect(aws).await?;
    let instance = ec2::describe(&client, instance_id).await?;
    let market = match instance.instance_lifecycle() {
        Some(lifecycle) => lifecycle.as_str().to_owned(),
        None => "on-demand".to_owned(),
    };
    let field = |value: Option<&str>| {
        value
            .filter(|value| !value.is_empty())
            .unwrap_or("-")
            .to_owned()
    };
    let rows = [
        ("instance", instance_id.to_owned()),
        ("name", field(ec2::tag_value(&instance, "Name"))),
        ("state", ec2::state_name(&instance)),
        (
            "state reason",
            field(instance.state_reason().and_then(|reason| reason.message())),
        ),
        ("market", market),
        (
            "instance type",
            field(instance.instance_type().map(|t| t.as_str())),
        ),
        ("image", field(instance.image_id())),
        (
            "launched",
            instance
                .launch_time()
                .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
                .map(format_time)
                .unwrap_or_else(|| "-".to_owned()),
        ),
        ("script", field(ec2::tag_value(&instance, ec2::SCRIPT_KEY))),
        (
            "script sha256",
            field(ec2::tag_value(&instance, ec2::SCRIPT_SHA256_KEY)),
        ),
        (
            "managed by",
            field(ec2::tag_value(&instance, ec2::MANAGED_BY_KEY)),
        ),
    ];
    for (key, value) in rows {
        println!("{:<14} {value}", format!("{key}:"));
    }
    Ok(ExitCode::from(exit_code::SUCCESS))
}

async fn terminate(aws: &AwsArgs, instance_id: &str) -> Result<ExitCode, Error> {
    let client = ec2::connect(aws).await?;
    let (previous, current) = ec2::terminate(&client, instance_id).await?;
    println!("{instance_id}: {previous} -> {current}");
    Ok(ExitCode::from(exit_code::SUCCESS))
}
