//! Everything that can go wrong, each mapped to one documented exit code, and
//! the translation of EC2 error codes into errors an operator can act on.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Process exit codes, documented in `docs/ec2-runner.md`.
pub mod exit_code {
    /// The command did what was asked (with `--wait`: the instance terminated).
    pub const SUCCESS: u8 = 0;
    /// Any other failure: an unexpected EC2 error, the endpoint unreachable, local I/O.
    pub const FAILURE: u8 = 1;
    /// Invalid command line or input (script unreadable or too large, no region).
    pub const USAGE: u8 = 2;
    /// No AWS credentials could be found.
    pub const NO_CREDENTIALS: u8 = 3;
    /// The credentials are not allowed to perform an EC2 action.
    pub const UNAUTHORIZED: u8 = 4;
    /// No spot (or on-demand) capacity, or the spot price is above `--max-price`.
    pub const NO_CAPACITY: u8 = 5;
    /// A resource named on the command line does not exist or is malformed
    /// (AMI, subnet, security group, instance).
    pub const INVALID_RESOURCE: u8 = 6;
    /// `--wait` gave up after `--timeout`; the instance may still be running.
    pub const WAIT_TIMEOUT: u8 = 7;
    /// `--wait` saw the instance settle in a state other than terminated.
    pub const NOT_TERMINATED: u8 = 8;
    /// `terminate` refused an instance that ec2-runner did not launch.
    pub const NOT_MANAGED: u8 = 9;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read script {}", path.display())]
    ReadScript {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("script {} is not UTF-8 text", path.display())]
    ScriptNotUtf8 { path: PathBuf },
    #[error(
        "user data for {script} would be {size} bytes, over the EC2 limit of {limit} bytes (16 KiB); \
         make the script smaller, or have it download the rest at boot"
    )]
    UserDataTooLarge {
        size: usize,
        limit: usize,
        script: String,
    },
    #[error("tag {key:?} is set by ec2-runner itself{}", if key == "Name" { "; use --name" } else { "" })]
    ReservedTag { key: String },
    #[error("no AWS region: pass --region, set AWS_REGION, or set a region in your AWS profile")]
    NoRegion,
    #[error(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         pass --profile or set AWS_PROFILE, or log in with `aws sso login`"
    )]
    NoCredentials(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("not authorized to perform ec2:{action}: {message}")]
    Unauthorized {
        action: &'static str,
        message: String,
    },
    #[error("ec2:{action} failed, no capacity ({code}): {message}")]
    NoCapacity {
        action: &'static str,
        code: String,
        message: String,
    },
    #[error("{what} rejected by ec2:{action} ({code}): {message}")]
    InvalidResource {
        what: &'static str,
        action: &'static str,
        code: String,
        message: String,
    },
    #[error("no Amazon Linux 2023 x86_64 image found in this region; pass --ami")]
    NoImage,
    #[error("ec2:{action} failed: {detail}")]
    Aws {
        action: &'static str,
        detail: String,
    },
    #[error("ec2:{action} failed: cannot reach the EC2 endpoint: {detail}")]
    Unreachable {
        action: &'static str,
        detail: String,
    },
    #[error(
        "gave up waiting for {instance_id} after {}s; it may still be running and will end itself \
         at its max runtime, or stop it now with `ec2-runner terminate {instance_id}`",
        timeout.as_secs()
    )]
    WaitTimeout {
        instance_id: String,
        timeout: Duration,
    },
    #[error("instance {instance_id} settled in state {state}, not terminated")]
    NotTerminated { instance_id: String, state: String },
    #[error("refusing to terminate {instance_id}: it is not tagged managed-by=ec2-runner")]
    NotManaged { instance_id: String },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ReadScript { .. }
            | Error::ScriptNotUtf8 { .. }
            | Error::UserDataTooLarge { .. }
            | Error::ReservedTag { .. }
            | Error::NoRegion => exit_code::USAGE,
            Error::NoCredentials(_) => exit_code::NO_CREDENTIALS,
            Error::Unauthorized { .. } => exit_code::UNAUTHORIZED,
            Error::NoCapacity { .. } => exit_code::NO_CAPACITY,
            Error::InvalidResource { .. } | Error::NoImage => exit_code::INVALID_RESOURCE,
            Error::WaitTimeout { .. } => exit_code::WAIT_TIMEOUT,
            Error::NotTerminated { .. } => exit_code::NOT_TERMINATED,
            Error::NotManaged { .. } => exit_code::NOT_MANAGED,
            Error::Aws { .. } | Error::Unreachable { .. } | Error::Runtime(_) => exit_code::FAILURE,
        }
    }

    /// What the operator can do about it, when there is something specific.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::NoCapacity { .. } => Some(
                "retry with --on-demand, another --instance-type, or a subnet in another availability zone \
                 (or raise --max-price)",
            ),
            Error::Unauthorized { .. } => {
                Some("docs/ec2-runner.md lists the minimal IAM policy ec2-runner needs")
            }
            Error::InvalidResource { what: "AMI", .. } => Some(
                "AMI ids are per region: check --ami exists in --region, or omit it to use Amazon Linux 2023",
            ),
            Error::InvalidResource { what: "subnet", .. } => {
                Some("check --subnet-id exists in --region, or omit it to use the default VPC")
            }
            _ => None,
        }
    }

    /// The message printed to stderr: the error, its causes, and a hint.
    pub fn report(&self) -> String {
        let mut text = format!("ec2-runner: error: {self}");
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        if let Some(hint) = self.hint() {
            text.push_str(&format!("\n  hint: {hint}"));
        }
        text
    }
}

/// Translates an EC2 failure of `action` (the API name, e.g. `RunInstances`)
/// into an error the operator can act on.
pub fn classify<E>(action: &'static str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    ) {
        return Error::Unreachable {
            action,
            detail: causes(&err),
        };
    }
    let code = err.code().unwrap_or_default().to_owned();
    let message = err.message().unwrap_or_default().to_owned();
    let invalid = |what: &'static str| Error::InvalidResource {
        what,
        action,
        code: code.clone(),
        message: message.clone(),
    };
    match code.as_str() {
        "UnauthorizedOperation" | "AuthFailure" | "AccessDenied" | "OptInRequired" => {
            Error::Unauthorized {
                action,
                message: if message.is_empty() {
                    code.clone()
                } else {
                    message.clone()
                },
            }
        }
        "InsufficientInstanceCapacity"
        | "InsufficientCapacity"
        | "SpotMaxPriceTooLow"
        | "MaxSpotInstanceCountExceeded"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded" => Error::NoCapacity {
            action,
            code,
            message,
        },
        c if c.starts_with("InvalidAMIID") => invalid("AMI"),
        c if c.starts_with("InvalidSubnet") => invalid("subnet"),
        c if c.starts_with("InvalidGroup") || c.starts_with("InvalidSecurityGroup") => {
            invalid("security group")
        }
        c if c.starts_with("InvalidKeyPair") => invalid("key pair"),
        c if c.starts_with("InvalidInstanceID") => invalid("instance"),
        "InvalidParameterValue" if message.contains("iamInstanceProfile") => {
            invalid("IAM instance profile")
        }
        _ => Error::Aws {
            action,
            detail: DisplayErrorContext(&err).to_string(),
        },
    }
}

/// The messages of an error's causes, without the debug dumps
/// `DisplayErrorContext` appends.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}
