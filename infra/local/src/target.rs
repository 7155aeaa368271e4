//! Where the operator commands point: the local stack (no flags, as the
//! runner creates it), or a deployed stack in a real account (the default
//! AWS credential chain, `--region`, `--profile`, and the names read from
//! the CloudFormation stack's outputs or given one by one).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Outputs of the deployed stack the operator commands read (template.yaml).
pub const OUTPUT_TRADING_TABLE: &str = "TradingTableName";
pub const OUTPUT_DEAD_LETTER_QUEUE_URL: &str = "FillDeadLetterQueueUrl";
pub const OUTPUT_BALANCES_API_URL: &str = "BalancesApiUrl";
/// Read when the stack has it; otherwise the dead-letter queue names its source.
pub const OUTPUT_FILL_QUEUE_URL: &str = "FillQueueUrl";

/// Which stack the operator commands read and change.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// A deployed stack: the table and queue names come from this
    /// CloudFormation stack's outputs (TradingTableName,
    /// FillDeadLetterQueueUrl, BalancesApiUrl). Without it, and without
    /// --trading-table / --dead-letter-queue-url, the commands read the
    /// local stack.
    #[arg(long)]
    pub stack: Option<String>,
    /// AWS region of the deployed stack (default: the credential chain's:
    /// AWS_REGION, the profile's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile of ~/.aws/config and ~/.aws/credentials (default: the
    /// credential chain's: AWS_PROFILE, environment, SSO, instance role).
    #[arg(long)]
    pub profile: Option<String>,
    /// The trading table of a deployed stack (instead of, or over, the stack's output).
    #[arg(long)]
    pub trading_table: Option<String>,
    /// The fill dead-letter queue of a deployed stack (instead of, or over, the stack's output).
    #[arg(long)]
    pub dead_letter_queue_url: Option<String>,
    /// Local stack only: prefix of its tables and queues (`up` uses `local-`).
    #[arg(long, default_value = "local-")]
    pub prefix: String,
}

impl Default for TargetArgs {
    fn default() -> Self {
        TargetArgs {
            stack: None,
            region: None,
            profile: None,
            trading_table: None,
            dead_letter_queue_url: None,
            prefix: "local-".into(),
        }
    }
}

/// The resolved names, and the SDK configuration to reach them.
#[derive(Debug, Clone)]
pub struct Target {
    pub sdk: aws_config::SdkConfig,
    /// A deployed stack (else the local stack).
    pub aws: bool,
    pub trading_table: String,
    pub dead_letter_queue_url: Option<String>,
    pub fill_queue_url: Option<String>,
    pub balances_url: Option<String>,
    /// What a running `up` wrote about itself (local stack only).
    pub local: Option<UpState>,
}

impl TargetArgs {
    /// Names point at a deployed stack.
    pub fn is_aws(&self) -> bool {
        self.stack.is_some()
            || self.region.is_some()
            || self.profile.is_some()
            || self.trading_table.is_some()
            || self.dead_letter_queue_url.is_some()
    }

    pub async fn resolve(&self) -> anyhow::Result<Target> {
        if self.is_aws() {
            self.resolve_aws().await
        } else {
            self.resolve_local().await
        }
    }

    async fn resolve_aws(&self) -> anyhow::Result<Target> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            bail!("no AWS region: pass --region, or set AWS_REGION or a profile's region");
        }
        let outputs = match &self.stack {
            Some(stack) => stack_outputs(&aws_sdk_cloudformation::Client::new(&sdk), stack).await?,
            None => BTreeMap::new(),
        };
        let from_stack = |name: &str| outputs.get(name).cloned();
        let trading_table = self
            .trading_table
            .clone()
            .or_else(|| from_stack(OUTPUT_TRADING_TABLE))
            .with_context(|| match &self.stack {
                Some(stack) => format!(
                    "stack {stack} has no output {OUTPUT_TRADING_TABLE}; pass --trading-table"
                ),
                None => "name the trading table: --stack <name> or --trading-table <name>".into(),
            })?;
        Ok(Target {
            sdk,
            aws: true,
            trading_table,
            dead_letter_queue_url: self
                .dead_letter_queue_url
                .clone()
                .or_else(|| from_stack(OUTPUT_DEAD_LETTER_QUEUE_URL)),
            fill_queue_url: from_stack(OUTPUT_FILL_QUEUE_URL),
            balances_url: from_stack(OUTPUT_BALANCES_API_URL),
            local: None,
        })
    }

    async fn resolve_local(&self) -> anyhow::Result<Target> {
        let stack = local_stack::Stack::ensure_running()
            .await
            .context("starting the local stack")?;
        let resources = stack
            .create_resources(&self.prefix)
            .await
            .context("creating the local tables and queues")?;
        let local = UpState::read().filter(|state| state.prefix == self.prefix);
        Ok(Target {
            sdk: stack.sdk_config(),
            aws: false,
            trading_table: resources.table("TradingTable").to_owned(),
            dead_letter_queue_url: Some(resources.queue_url("FillDeadLetterQueue").to_owned()),
            fill_queue_url: Some(resources.queue_url("FillQueue").to_owned()),
            balances_url: local.as_ref().map(|s| s.balances_url.clone()),
            local,
        })
    }
}

/// A CloudFormation stack's outputs by key.
pub async fn stack_outputs(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let described = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata as _;
            let why = match e.as_service_error() {
                Some(service) => format!(
                    "{}: {}",
                    service.code().unwrap_or("error"),
                    service.message().unwrap_or("no message")
                ),
                None => aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string(),
            };
            anyhow::anyhow!("reading the outputs of stack {stack}: {why}")
        })?;
    let Some(found) = described.stacks().first() else {
        bail!("no stack named {stack}");
    };
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect())
}

/// What `up` writes about the stack it runs (`.local/up.json`), so the
/// operator commands find its services without flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpState {
    pub pid: u32,
    pub prefix: String,
    pub api_url: String,
    pub balances_url: String,
    pub exchange_url: String,
    pub venue: String,
}

impl UpState {
    pub fn path() -> PathBuf {
        local_stack::workspace_root().join(".local").join("up.json")
    }

    pub fn write(&self) -> anyhow::Result<()> {
        let path = Self::path();
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The state of a running `up` (a file whose process is gone is ignored).
    pub fn read() -> Option<UpState> {
        let text = std::fs::read_to_string(Self::path()).ok()?;
        let state: UpState = serde_json::from_str(&text).ok()?;
        let pid = libc::pid_t::try_from(state.pid).ok()?;
        // Signal 0: is the process there.
        // SAFETY: kill(2) with signal 0 only checks the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive.then_some(state)
    }

    pub fn remove() {
        let _ = std::fs::remove_file(Self::path());
    }
}
