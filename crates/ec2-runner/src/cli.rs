//! The command line: what the operator can ask for, with the help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Launch an EC2 instance that runs one script at boot and terminates itself
/// when the script ends, so nothing is left running or billing.
///
/// Exit codes: 0 success, 1 failure, 2 usage, 3 no credentials, 4 unauthorized,
/// 5 no capacity, 6 invalid resource, 7 wait timed out, 8 not terminated,
/// 9 not managed by ec2-runner (see docs/ec2-runner.md).
#[derive(Debug, Parser)]
#[command(name = "ec2-runner", version)]
pub struct Cli {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where to send requests and as whom. Credentials come from the standard AWS
/// chain: environment, profiles (including SSO), web identity, container and
/// instance roles.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS region, e.g. eu-west-1 (defaults to the profile's region)
    #[arg(long, env = "AWS_REGION", global = true)]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config
    #[arg(long, env = "AWS_PROFILE", global = true)]
    pub profile: Option<String>,
    /// Send EC2 requests to this AWS-compatible endpoint instead of AWS
    #[arg(long, env = "EC2_RUNNER_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch one instance that runs the script at boot, then terminates itself.
    /// Prints the instance id on stdout.
    Launch(Box<LaunchArgs>),
    /// Show an instance's state, market, image and ec2-runner tags
    Status {
        /// Instance id, e.g. i-0123456789abcdef0
        instance_id: String,
    },
    /// Terminate an instance launched by ec2-runner before its script ends
    Terminate {
        /// Instance id, e.g. i-0123456789abcdef0
        instance_id: String,
    },
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Script run at boot, embedded in the user data (16 KiB limit in total)
    #[arg(long, value_name = "PATH", default_value = "deploy/ec2/xyz.sh")]
    pub script: PathBuf,
    /// Run name: the Name tag and the deploytime component `ec2-runner/<NAME>`
    /// [default: the script's file name without extension]
    #[arg(long)]
    pub name: Option<String>,
    /// Image id [default: the latest Amazon Linux 2023 x86_64 image]
    #[arg(long)]
    pub ami: Option<String>,
    /// Instance type
    #[arg(long, default_value = "t3.micro")]
    pub instance_type: String,
    /// Launch on-demand instead of spot
    #[arg(long)]
    pub on_demand: bool,
    /// Highest spot price per hour in USD, e.g. 0.005 [default: the on-demand price]
    #[arg(long, conflicts_with = "on_demand")]
    pub max_price: Option<String>,
    /// Hard deadline for the script, scheduled at boot: after it the script is
    /// stopped and the instance terminates (e.g. 90s, 15m, 1h)
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub max_runtime: Duration,
    /// Subnet to launch in [default: the default VPC's default subnet]
    #[arg(long)]
    pub subnet_id: Option<String>,
    /// Security group (repeatable) [default: the VPC's default group]
    #[arg(long = "security-group-id", value_name = "SECURITY_GROUP_ID")]
    pub security_group_ids: Vec<String>,
    /// Key pair for SSH (not needed: the script runs unattended)
    #[arg(long)]
    pub key_name: Option<String>,
    /// Instance profile name or ARN, for scripts that call AWS themselves
    #[arg(long)]
    pub iam_instance_profile: Option<String>,
    /// Extra tag KEY=VALUE (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Follow the instance until it terminates, print its timeline and console
    /// output; exit 0 only if it terminated
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long [default: max runtime + 10m]
    #[arg(long, requires = "wait", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Record the run as a deploytime deployment on this server (start at
    /// launch, finish at termination with --wait); failures only warn
    #[arg(long, value_name = "URL", env = "DEPLOYTIME_URL")]
    pub report_to: Option<String>,
    /// Check permissions and parameters with EC2's DryRun; launch nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Parses `90s`, `15m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m or 1h"))?;
    let seconds = match unit {
        "" | "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(|| format!("{text:?} is not a duration like 90s, 15m or 1h"))?;
    if seconds == 0 {
        return Err("a duration must be at least 1s".to_owned());
    }
    Ok(Duration::from_secs(seconds))
}

/// Parses `KEY=VALUE`; the value may be empty, the key may not.
pub fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(parse_tag("team=ops"), Ok(("team".into(), "ops".into())));
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_tag("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_tag("novalue").is_err());
        assert!(parse_tag("=x").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
