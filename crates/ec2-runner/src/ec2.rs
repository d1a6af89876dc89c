//! The EC2 calls: client setup, image lookup, launch, describe, terminate and
//! following an instance until it terminates.

use deploytime_core::Status;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::client::Waiters as _;
use aws_sdk_ec2::config::ProvideCredentials as _;
use aws_sdk_ec2::error::ProvideErrorMetadata as _;
use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileSpecification, Instance,
    InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceMetadataOptionsRequest,
    MarketType, ResourceType, ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag,
    TagSpecification,
};
use chrono::{DateTime, Utc};

use crate::cli::AwsArgs;
use crate::error::{Error, classify};

/// Tag every ec2-runner instance carries; `terminate` refuses instances without it.
pub const MANAGED_BY_KEY: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "ec2-runner";
pub const SCRIPT_SHA256_KEY: &str = "ec2-runner:script-sha256";
pub const SCRIPT_KEY: &str = "ec2-runner:script";
const RESERVED_TAG_KEYS: [&str; 4] = ["Name", MANAGED_BY_KEY, SCRIPT_SHA256_KEY, SCRIPT_KEY];

/// Name pattern of the standard Amazon Linux 2023 images (the `minimal`
/// variants lack tools the wrapper relies on, and do not match).
pub const AL2023_NAME_PATTERN: &str = "al2023-ami-2023.*-x86_64";

/// Builds the EC2 client from the standard AWS configuration chain, and checks
/// up front that a region and credentials exist, so their absence is reported
/// as such rather than as a failed request.
pub async fn connect(args: &AwsArgs) -> Result<Client, Error> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &args.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(Error::NoRegion);
    }
    let provider = config
        .credentials_provider()
        .ok_or_else(|| Error::NoCredentials("no credentials provider configured".into()))?;
    provider
        .provide_credentials()
        .await
        .map_err(|err| Error::NoCredentials(Box::new(err)))?;
    let mut builder = aws_sdk_ec2::config::Builder::from(&config);
    if let Some(url) = &args.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    Ok(Client::from_conf(builder.build()))
}

/// Finds the newest Amazon Linux 2023 x86_64 image owned by Amazon, so no
/// image id is hard-coded and every launch gets current patches.
pub async fn latest_al2023_image(client: &Client) -> Result<String, Error> {
    let output = client
        .describe_images()
        .owners("amazon")
        .filters(filter("name", AL2023_NAME_PATTERN))
        .filters(filter("architecture", "x86_64"))
        .filters(filter("state", "available"))
        .send()
        .await
        .map_err(|err| classify("DescribeImages", err))?;
    output
        .images()
        .iter()
        // ISO 8601 creation dates sort as text; the name breaks ties.
        .max_by_key(|image| (image.creation_date(), image.name()))
        .and_then(|image| image.image_id())
        .map(str::to_owned)
        .ok_or(Error::NoImage)
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Whether to ask for spot capacity, and at what ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Market {
    Spot { max_price: Option<String> },
    OnDemand,
}

/// Everything one launch sends, decided before any call is made.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub name: String,
    pub image_id: String,
    pub instance_type: String,
    pub market: Market,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub key_name: Option<String>,
    pub iam_instance_profile: Option<String>,
    pub extra_tags: Vec<(String, String)>,
    pub script_file_name: String,
    pub script_sha256: String,
    pub user_data_base64: String,
    /// Makes a retried RunInstances idempotent: EC2 launches once per token.
    pub client_token: String,
    pub dry_run: bool,
}

/// Rejects tags that would overwrite the ones ec2-runner relies on.
pub fn check_extra_tags(tags: &[(String, String)]) -> Result<(), Error> {
    match tags
        .iter()
        .find(|(key, _)| RESERVED_TAG_KEYS.contains(&key.as_str()))
    {
        Some((key, _)) => Err(Error::ReservedTag { key: key.clone() }),
        None => Ok(()),
    }
}

/// The tags on the instance and its volumes.
pub fn tags(spec: &LaunchSpec) -> Vec<Tag> {
    let own = [
        ("Name", spec.name.as_str()),
        (MANAGED_BY_KEY, MANAGED_BY_VALUE),
        (SCRIPT_KEY, spec.script_file_name.as_str()),
        (SCRIPT_SHA256_KEY, spec.script_sha256.as_str()),
    ];
    own.into_iter()
        .chain(
            spec.extra_tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

/// Builds the RunInstances request for `spec`.
pub fn run_instances_request(client: &Client, spec: &LaunchSpec) -> RunInstancesFluentBuilder {
    let tags = tags(spec);
    let tag_specification = |resource_type| {
        TagSpecification::builder()
            .resource_type(resource_type)
            .set_tags(Some(tags.clone()))
            .build()
    };
    let market_options = match &spec.market {
        Market::Spot { max_price } => Some(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        // One-time: a persistent request would relaunch the
                        // instance after it terminates itself.
                        .spot_instance_type(SpotInstanceType::OneTime)
                        .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                        .set_max_price(max_price.clone())
                        .build(),
                )
                .build(),
        ),
        Market::OnDemand => None,
    };
    let profile = spec.iam_instance_profile.as_ref().map(|profile| {
        let builder = IamInstanceProfileSpecification::builder();
        if profile.starts_with("arn:") {
            builder.arn(profile).build()
        } else {
            builder.name(profile).build()
        }
    });
    client
        .run_instances()
        .image_id(&spec.image_id)
        .instance_type(spec.instance_type.as_str().into())
        .min_count(1)
        .max_count(1)
        .user_data(&spec.user_data_base64)
        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
        .set_instance_market_options(market_options)
        .set_subnet_id(spec.subnet_id.clone())
        .set_security_group_ids(
            (!spec.security_group_ids.is_empty()).then(|| spec.security_group_ids.clone()),
        )
        .set_key_name(spec.key_name.clone())
        .set_iam_instance_profile(profile)
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_tokens(HttpTokensState::Required)
                .build(),
        )
        .tag_specifications(tag_specification(ResourceType::Instance))
        .tag_specifications(tag_specification(ResourceType::Volume))
        .client_token(&spec.client_token)
        .dry_run(spec.dry_run)
}

/// What RunInstances did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launched {
    Instance {
        instance_id: String,
        launch_time: Option<DateTime<Utc>>,
    },
    /// `--dry-run`: EC2 answered that the request would have succeeded.
    DryRunPassed,
}

pub async fn launch(client: &Client, spec: &LaunchSpec) -> Result<Launched, Error> {
    let output = match run_instances_request(client, spec).send().await {
        Ok(output) => output,
        Err(err) if spec.dry_run && err.code() == Some("DryRunOperation") => {
            return Ok(Launched::DryRunPassed);
        }
        Err(err) => return Err(classify("RunInstances", err)),
    };
    let instance = output.instances().first();
    let instance_id = instance
        .and_then(Instance::instance_id)
        .ok_or_else(|| Error::Aws {
            action: "RunInstances",
            detail: "the response names no instance".to_owned(),
        })?;
    Ok(Launched::Instance {
        instance_id: instance_id.to_owned(),
        launch_time: instance.and_then(Instance::launch_time).and_then(to_chrono),
    })
}

fn to_chrono(time: &aws_sdk_ec2::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

pub async fn describe(client: &Client, instance_id: &str) -> Result<Instance, Error> {
    let output = client
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|err| classify("DescribeInstances", err))?;
    first_instance(&output)
        .cloned()
        .ok_or_else(|| Error::InvalidResource {
            what: "instance",
            action: "DescribeInstances",
            code: "InvalidInstanceID.NotFound".to_owned(),
            message: format!("the instance ID '{instance_id}' does not exist"),
        })
}

fn first_instance(
    output: &aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput,
) -> Option<&Instance> {
    output
        .reservations()
        .iter()
        .flat_map(|reservation| reservation.instances())
        .next()
}

pub fn tag_value<'a>(instance: &'a Instance, key: &str) -> Option<&'a str> {
    instance
        .tags()
        .iter()
        .find(|tag| tag.key() == Some(key))
        .and_then(|tag| tag.value())
}

pub fn state_name(instance: &Instance) -> String {
    instance
        .state()
        .and_then(|state| state.name())
        .map(|name| name.as_str().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Terminates an instance ec2-runner launched; returns its previous and current state.
pub async fn terminate(client: &Client, instance_id: &str) -> Result<(String, String), Error> {
    let instance = describe(client, instance_id).await?;
    if tag_value(&instance, MANAGED_BY_KEY) != Some(MANAGED_BY_VALUE) {
        return Err(Error::NotManaged {
            instance_id: instance_id.to_owned(),
        });
    }
    let output = client
        .terminate_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|err| classify("TerminateInstances", err))?;
    let change = output.terminating_instances().first();
    let name = |state: Option<&aws_sdk_ec2::types::InstanceState>| {
        state
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    Ok((
        name(change.and_then(|c| c.previous_state())),
        name(change.and_then(|c| c.current_state())),
    ))
}

/// How following an instance ended.
#[derive(Debug, Clone)]
pub enum WaitOutcome {
    Terminated {
        /// EC2's state reason code, e.g. `Client.InstanceInitiatedShutdown`
        /// (the script ended and the wrapper powered off) or
        /// `Client.UserInitiatedShutdown` (someone terminated it).
        reason_code: Option<String>,
        reason_message: Option<String>,
        /// When the shutdown started, from the state transition reason.
        shutdown_at: Option<DateTime<Utc>>,
    },
    TimedOut,
    /// Settled somewhere other than terminated (e.g. stopped).
    Other {
        state: String,
    },
}

impl WaitOutcome {
    /// The deploytime finish status for this outcome.
    pub fn report_status(&self) -> Status {
        let failed = |code: &str| Status::Failed(code.to_owned());
        match self {
            WaitOutcome::Terminated { reason_code, .. }
                if reason_code.as_deref() == Some("Client.InstanceInitiatedShutdown") =>
            {
                Status::Success
            }
            WaitOutcome::Terminated { .. } => failed("terminated-early"),
            WaitOutcome::TimedOut => failed("timeout"),
            WaitOutcome::Other { .. } => failed("failed"),
        }
    }
}

/// One line of the printed timeline.
#[derive(Debug, Clone)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub what: String,
}

/// Follows an instance to termination with the SDK's waiters: first until it
/// is running, then until it is terminated. The waiters report only their end
/// state, so the timeline has what EC2 records (launch time, the shutdown
/// time in the state transition reason) plus when each wait ended; that is
/// enough to see where the time went without a polling loop of our own.
pub async fn follow_to_termination(
    client: &Client,
    instance_id: &str,
    timeout: Duration,
    progress: &indicatif::ProgressBar,
    timeline: &mut Vec<TimelineEntry>,
) -> Result<WaitOutcome, Error> {
    use aws_sdk_ec2::waiters::instance_running::WaitUntilInstanceRunningError as RunningError;
    use aws_sdk_ec2::waiters::instance_terminated::WaitUntilInstanceTerminatedError as TerminatedError;

    let started = Instant::now();
    let remaining = || timeout.saturating_sub(started.elapsed());

    progress.set_message(format!("{instance_id}: pending, waiting for it to run"));
    match client
        .wait_until_instance_running()
        .instance_ids(instance_id)
        .wait(remaining())
        .await
    {
        Ok(_) => timeline.push(TimelineEntry {
            at: Utc::now(),
            what: "running".to_owned(),
        }),
        // Shutting down or terminated before it was seen running (a very
        // short script, or a spot interruption): the next wait settles it.
        Err(RunningError::FailureState(_)) => {}
        Err(RunningError::ExceededMaxWait(_)) => return Ok(WaitOutcome::TimedOut),
        Err(RunningError::OperationFailed(failed)) => {
            return Err(classify("DescribeInstances", failed.into_error()));
        }
        Err(other) => {
            return Err(Error::Aws {
                action: "DescribeInstances",
                detail: other.to_string(),
            });
        }
    }

    progress.set_message(format!(
        "{instance_id}: running the script, waiting for it to terminate"
    ));
    let final_poll = match client
        .wait_until_instance_terminated()
        .instance_ids(instance_id)
        .wait(remaining())
        .await
    {
        Ok(final_poll) => final_poll,
        Err(TerminatedError::FailureState(_)) => {
            let instance = describe(client, instance_id).await?;
            return Ok(WaitOutcome::Other {
                state: state_name(&instance),
            });
        }
        Err(TerminatedError::ExceededMaxWait(_)) => return Ok(WaitOutcome::TimedOut),
        Err(TerminatedError::OperationFailed(failed)) => {
            return Err(classify("DescribeInstances", failed.into_error()));
        }
        Err(other) => {
            return Err(Error::Aws {
                action: "DescribeInstances",
                detail: other.to_string(),
            });
        }
    };
    let terminated_at = Utc::now();
    let instance = final_poll.as_result().ok().and_then(first_instance);
    let reason = instance.and_then(Instance::state_reason);
    let shutdown_at = instance
        .and_then(Instance::state_transition_reason)
        .and_then(parse_transition_time);
    if let Some(at) = shutdown_at {
        timeline.push(TimelineEntry {
            at,
            what: "shutting-down".to_owned(),
        });
    }
    timeline.push(TimelineEntry {
        at: terminated_at,
        what: "terminated".to_owned(),
    });
    Ok(WaitOutcome::Terminated {
        reason_code: reason.and_then(|r| r.code()).map(str::to_owned),
        reason_message: reason.and_then(|r| r.message()).map(str::to_owned),
        shutdown_at,
    })
}

/// Reads the time out of a state transition reason such as
/// `User initiated (2024-05-01 12:34:56 GMT)`.
pub fn parse_transition_time(reason: &str) -> Option<DateTime<Utc>> {
    let inner = reason.rsplit_once('(')?.1.strip_suffix(')')?;
    let inner = inner.strip_suffix(" GMT").unwrap_or(inner);
    chrono::NaiveDateTime::parse_from_str(inner, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|naive| naive.and_utc())
}

/// The serial console output, when EC2 has it; `None` otherwise (it is
/// published with a delay and is best effort).
pub async fn console_output(client: &Client, instance_id: &str) -> Option<String> {
    use base64::Engine as _;
    let output = client
        .get_console_output()
        .instance_id(instance_id)
        .send()
        .await
        .ok()?;
    let encoded = output.output()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    //! Request-level tests: what ec2-runner sends, and how it reads EC2's
    //! errors, against the SDK's mock interceptor; no network involved.
    use std::sync::{Arc, Mutex};

    use aws_sdk_ec2::error::ErrorMetadata;
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::operation::run_instances::{
        RunInstancesError, RunInstancesInput, RunInstancesOutput,
    };
    use aws_sdk_ec2::types::Image;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;
    use crate::error::exit_code;

    fn spec() -> LaunchSpec {
        LaunchSpec {
            name: "xyz".into(),
            image_id: "ami-0123456789abcdef0".into(),
            instance_type: "t3.micro".into(),
            market: Market::Spot { max_price: None },
            subnet_id: None,
            security_group_ids: vec![],
            key_name: None,
            iam_instance_profile: None,
            extra_tags: vec![("team".into(), "ops".into())],
            script_file_name: "xyz.sh".into(),
            script_sha256: "ab".repeat(32),
            user_data_base64: "IyEvYmluL2Jhc2gK".into(),
            client_token: "0193-token".into(),
            dry_run: false,
        }
    }

    /// Launches `spec` against a mock that records the request and answers
    /// with one instance.
    async fn sent_request(spec: &LaunchSpec) -> RunInstancesInput {
        let seen = Arc::new(Mutex::new(None));
        let recorder = seen.clone();
        let rule = mock!(Client::run_instances)
            .match_requests(move |input| {
                *recorder.lock().unwrap() = Some(input.clone());
                true
            })
            .then_output(|| {
                RunInstancesOutput::builder()
                    .instances(Instance::builder().instance_id("i-0mock").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_ec2, [&rule]);
        let launched = launch(&client, spec).await.unwrap();
        assert_eq!(
            launched,
            Launched::Instance {
                instance_id: "i-0mock".into(),
                launch_time: None
            }
        );
        assert_eq!(rule.num_calls(), 1);
        seen.lock().unwrap().take().unwrap()
    }

    fn tag_map(spec: &TagSpecification) -> Vec<(&str, &str)> {
        spec.tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn spot_launch_is_one_time_terminating_and_self_terminating() {
        let mut spec = spec();
        spec.market = Market::Spot {
            max_price: Some("0.005".into()),
        };
        let input = sent_request(&spec).await;

        let market = input.instance_market_options().unwrap();
        assert_eq!(market.market_type(), Some(&MarketType::Spot));
        let spot = market.spot_options().unwrap();
        assert_eq!(spot.spot_instance_type(), Some(&SpotInstanceType::OneTime));
        assert_eq!(
            spot.instance_interruption_behavior(),
            Some(&InstanceInterruptionBehavior::Terminate)
        );
        assert_eq!(spot.max_price(), Some("0.005"));
        assert_eq!(
            input.instance_initiated_shutdown_behavior(),
            Some(&ShutdownBehavior::Terminate)
        );
        assert_eq!((input.min_count(), input.max_count()), (Some(1), Some(1)));
        assert_eq!(input.image_id(), Some("ami-0123456789abcdef0"));
        assert_eq!(input.instance_type().map(|t| t.as_str()), Some("t3.micro"));
        assert_eq!(input.user_data(), Some("IyEvYmluL2Jhc2gK"));
        assert_eq!(input.client_token(), Some("0193-token"));
        assert_eq!(input.dry_run(), Some(false));
        assert_eq!(
            input.metadata_options().and_then(|m| m.http_tokens()),
            Some(&HttpTokensState::Required)
        );
        assert_eq!(input.subnet_id(), None);
        assert_eq!(input.iam_instance_profile(), None);

        let specs = input.tag_specifications();
        let types: Vec<_> = specs.iter().map(|s| s.resource_type().unwrap()).collect();
        assert_eq!(types, [&ResourceType::Instance, &ResourceType::Volume]);
        let sha = "ab".repeat(32);
        for spec in specs {
            assert_eq!(
                tag_map(spec),
                [
                    ("Name", "xyz"),
                    ("managed-by", "ec2-runner"),
                    ("ec2-runner:script", "xyz.sh"),
                    ("ec2-runner:script-sha256", sha.as_str()),
                    ("team", "ops"),
                ]
            );
        }
    }

    #[tokio::test]
    async fn on_demand_launch_has_no_market_options_and_passes_placement() {
        let mut spec = spec();
        spec.market = Market::OnDemand;
        spec.subnet_id = Some("subnet-1".into());
        spec.security_group_ids = vec!["sg-1".into(), "sg-2".into()];
        spec.key_name = Some("ops".into());
        spec.iam_instance_profile =
            Some("arn:aws:iam::123456789012:instance-profile/runner".into());
        let input = sent_request(&spec).await;

        assert!(input.instance_market_options().is_none());
        assert_eq!(
            input.instance_initiated_shutdown_behavior(),
            Some(&ShutdownBehavior::Terminate)
        );
        assert_eq!(input.subnet_id(), Some("subnet-1"));
        assert_eq!(input.security_group_ids(), ["sg-1", "sg-2"]);
        assert_eq!(input.key_name(), Some("ops"));
        let profile = input.iam_instance_profile().unwrap();
        assert_eq!(
            profile.arn(),
            Some("arn:aws:iam::123456789012:instance-profile/runner")
        );
        assert_eq!(profile.name(), None);

        spec.iam_instance_profile = Some("runner".into());
        let input = sent_request(&spec).await;
        assert_eq!(input.iam_instance_profile().unwrap().name(), Some("runner"));
    }

    fn failing_client(code: &'static str) -> Client {
        let rule = mock!(Client::run_instances).then_error(move || {
            RunInstancesError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message(format!("{code} from the mock"))
                    .build(),
            )
        });
        mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&rule])
    }

    #[tokio::test]
    async fn ec2_errors_become_actionable_errors() {
        let cases = [
            ("InsufficientInstanceCapacity", exit_code::NO_CAPACITY),
            ("SpotMaxPriceTooLow", exit_code::NO_CAPACITY),
            ("UnauthorizedOperation", exit_code::UNAUTHORIZED),
            ("InvalidAMIID.NotFound", exit_code::INVALID_RESOURCE),
            ("InvalidSubnetID.NotFound", exit_code::INVALID_RESOURCE),
            ("InternalError", exit_code::FAILURE),
        ];
        for (code, expected) in cases {
            let err = launch(&failing_client(code), &spec()).await.unwrap_err();
            assert_eq!(err.exit_code(), expected, "{code}: {err:?}");
            assert!(err.report().contains(code), "{code}: {}", err.report());
        }

        let err = launch(&failing_client("SpotMaxPriceTooLow"), &spec())
            .await
            .unwrap_err();
        assert!(err.report().contains("--on-demand"), "{}", err.report());
        let err = launch(&failing_client("UnauthorizedOperation"), &spec())
            .await
            .unwrap_err();
        assert!(
            err.report().contains("ec2:RunInstances"),
            "the failing action is named: {}",
            err.report()
        );
    }

    #[tokio::test]
    async fn dry_run_succeeds_on_dry_run_operation_only() {
        let mut dry = spec();
        dry.dry_run = true;
        assert_eq!(
            launch(&failing_client("DryRunOperation"), &dry)
                .await
                .unwrap(),
            Launched::DryRunPassed
        );
        let err = launch(&failing_client("UnauthorizedOperation"), &dry)
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), exit_code::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn picks_the_newest_amazon_linux_2023_image() {
        let image = |id: &str, date: &str| {
            Image::builder()
                .image_id(id)
                .name(format!("al2023-ami-2023.{id}-x86_64"))
                .creation_date(date)
                .build()
        };
        let rule = mock!(Client::describe_images)
            .match_requests(|input| {
                let filter = |name: &str| {
                    input
                        .filters()
                        .iter()
                        .find(|f| f.name() == Some(name))
                        .map(|f| f.values().to_vec())
                };
                input.owners() == ["amazon"]
                    && filter("name") == Some(vec![AL2023_NAME_PATTERN.to_owned()])
                    && filter("architecture") == Some(vec!["x86_64".to_owned()])
            })
            .then_output(move || {
                DescribeImagesOutput::builder()
                    .images(image("ami-old", "2024-01-01T00:00:00.000Z"))
                    .images(image("ami-new", "2025-06-01T00:00:00.000Z"))
                    .images(image("ami-mid", "2024-09-01T00:00:00.000Z"))
                    .build()
            });
        let client = mock_client!(aws_sdk_ec2, [&rule]);
        assert_eq!(latest_al2023_image(&client).await.unwrap(), "ami-new");

        let empty =
            mock!(Client::describe_images).then_output(|| DescribeImagesOutput::builder().build());
        let client = mock_client!(aws_sdk_ec2, [&empty]);
        let err = latest_al2023_image(&client).await.unwrap_err();
        assert_eq!(err.exit_code(), exit_code::INVALID_RESOURCE);
    }

    #[test]
    fn operator_tags_cannot_replace_ec2_runner_tags() {
        for key in ["Name", "managed-by", "ec2-runner:script-sha256"] {
            let err = check_extra_tags(&[(key.into(), "x".into())]).unwrap_err();
            assert_eq!(err.exit_code(), exit_code::USAGE);
        }
        check_extra_tags(&[("team".into(), "ops".into())]).unwrap();
    }

    #[test]
    fn reads_the_shutdown_time_from_the_transition_reason() {
        let at = parse_transition_time("User initiated (2024-05-01 12:34:56 GMT)").unwrap();
        assert_eq!(at.to_rfc3339(), "2024-05-01T12:34:56+00:00");
        assert!(parse_transition_time("").is_none());
    }

    #[test]
    fn finish_status_tells_a_completed_run_from_an_interrupted_one() {
        let terminated = |code: &str| WaitOutcome::Terminated {
            reason_code: Some(code.into()),
            reason_message: None,
            shutdown_at: None,
        };
        assert_eq!(
            terminated("Client.InstanceInitiatedShutdown")
                .report_status()
                .as_str(),
            "success"
        );
        assert_eq!(
            terminated("Client.UserInitiatedShutdown")
                .report_status()
                .as_str(),
            "terminated-early"
        );
        assert_eq!(
            terminated("Server.SpotInstanceTermination")
                .report_status()
                .as_str(),
            "terminated-early"
        );
        assert_eq!(WaitOutcome::TimedOut.report_status().as_str(), "timeout");
    }
}
