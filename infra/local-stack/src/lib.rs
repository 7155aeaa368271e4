//! The local stack: a DynamoDB + SQS + Secrets Manager emulator (moto,
//! wrapped by `infra/moto/server.py`) and the tables and queues of
//! `template.yaml`.
//!
//! - [`ensure_installed`] creates `<workspace>/.local/venv` with the pinned
//!   `infra/moto/requirements.txt` (re-installing when that file changes).
//! - [`Stack::ensure_running`] starts the emulator detached (it outlives the
//!   calling process, so parallel test processes share one) or reuses the one
//!   that already answers.
//! - [`Stack::create_resources`] creates `<prefix><LogicalId>` tables and
//!   queues from the template, so each test gets its own set.
//! - [`Stack::put_secret`] creates a Secrets Manager secret or stores a new
//!   current version of it (the exchange's webhook signing secrets; in AWS
//!   the template's `WebhookSigningSecret`, whose value the operator sets).
//!
//! Environment:
//! - `LOCAL_STACK_PORT` (default 4566): port of the emulator on 127.0.0.1.
//! - `LOCAL_STACK_ENDPOINT`: use this emulator as it is (start nothing); e.g.
//!   a stock `moto_server` to compare against.
//! - `LOCAL_STACK_ROOT`: the checkout to use (default: found from the current
//!   directory, see [`workspace_root`]).
//! - `LOCAL_STACK_TEMPLATE` (default `<workspace>/template.yaml`): where the
//!   table and queue definitions come from.
//! - `LOCAL_STACK_PYTHON` (default `python3`): interpreter that creates the venv.

mod process;
mod resources;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use process::{ensure_installed, python_tool, status, stop, EmulatorStatus};
pub use template::{QueueSpec, TableSpec, TemplateResources};

/// Default port of the emulator (LocalStack's customary port, so SDK users recognise it).
pub const DEFAULT_PORT: u16 = 4566;

/// Everything that can go wrong while installing, starting or provisioning.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the emulator failed: {0}")]
    Install(String),
    #[error("the emulator did not start: {0}")]
    Start(String),
    #[error("port {port} is taken by something that is not this project's emulator: {detail}")]
    PortTaken { port: u16, detail: String },
    #[error("template.yaml: {0}")]
    Template(String),
    #[error(
        "invalid resource prefix {0:?}: use letters, digits, '-' and '_' (at most 100 characters)"
    )]
    Prefix(String),
    #[error("{operation} failed: {message}")]
    Aws { operation: String, message: String },
    #[error("invalid setting: {0}")]
    Config(String),
}

impl StackError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StackError::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps an SDK error with its full source chain (the SDK's Display alone
    /// is often just "service error").
    pub(crate) fn aws(operation: &str, error: impl std::error::Error) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        StackError::Aws {
            operation: operation.to_string(),
            message,
        }
    }
}

/// Root of the checkout this command runs in (where `template.yaml`, `infra/`
/// and `.local/` live), found at run time, never fixed at compile time: a
/// copied or moved checkout uses its own files and its own `.local/`.
///
/// In order: `$LOCAL_STACK_ROOT`; the nearest directory at or above the
/// current one that holds the project's marker files (tests run in their
/// crate's directory, `cargo run` wherever it is typed); the same search
/// from the running executable (`<root>/target/<profile>/...`); else the
/// current directory.
pub fn workspace_root() -> PathBuf {
    if let Some(root) = std::env::var_os("LOCAL_STACK_ROOT") {
        return PathBuf::from(root);
    }
    let current = std::env::current_dir().ok();
    let from_cwd = current.as_deref().and_then(project_root_above);
    let from_exe = || {
        std::env::current_exe()
            .ok()
            .and_then(|exe| project_root_above(&exe))
    };
    from_cwd
        .or_else(from_exe)
        .or(current)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The nearest ancestor of `start` (itself included) that is this project's root.
fn project_root_above(start: &std::path::Path) -> Option<PathBuf> {
    const MARKERS: [&str; 2] = ["template.yaml", "infra/moto/server.py"];
    start
        .ancestors()
        .find(|dir| MARKERS.iter().all(|marker| dir.join(marker).is_file()))
        .map(PathBuf::from)
}

/// The template the resources come from: `$LOCAL_STACK_TEMPLATE` if set,
/// else `<workspace>/template.yaml`.
pub fn template_path() -> PathBuf {
    std::env::var_os("LOCAL_STACK_TEMPLATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("template.yaml"))
}

/// A resource prefix unique to one test or demo run, e.g. `t-orders-1a2b3c4d-`.
pub fn unique_prefix(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t-{clean}-{}-", &id[..8])
}

/// A running emulator (started by us or reused).
#[derive(Debug, Clone)]
pub struct Stack {
    dynamodb_endpoint: String,
    sqs_endpoint: String,
    secrets_manager_endpoint: String,
}

/// Region, and dummy credentials the emulator accepts (it does not check them).
const REGION: &str = "us-east-1";
const ACCESS_KEY_ID: &str = "local";
const SECRET_ACCESS_KEY: &str = "local";

impl Stack {
    /// Starts the emulator (installing it if missing) unless one already
    /// answers; reuses it otherwise.
    pub async fn ensure_running() -> Result<Stack, StackError> {
        let endpoint = tokio::task::spawn_blocking(process::ensure_running_blocking)
            .await
            .map_err(|e| StackError::Start(format!("launcher task failed: {e}")))??;
        Ok(Stack::at(&endpoint))
    }

    /// A stack at a known endpoint, started by someone else (no checks).
    pub fn at(endpoint: &str) -> Stack {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        Stack {
            dynamodb_endpoint: endpoint.clone(),
            sqs_endpoint: endpoint.clone(),
            secrets_manager_endpoint: endpoint,
        }
    }

    pub fn dynamodb_endpoint(&self) -> &str {
        &self.dynamodb_endpoint
    }

    pub fn sqs_endpoint(&self) -> &str {
        &self.sqs_endpoint
    }

    pub fn secrets_manager_endpoint(&self) -> &str {
        &self.secrets_manager_endpoint
    }

    /// SdkConfig with the endpoints above (service-specific endpoint URLs),
    /// region us-east-1, static dummy credentials.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        let credentials = aws_credential_types::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "local-stack",
        );
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            )
            // The same per-service hook that AWS_ENDPOINT_URL_DYNAMODB /
            // AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL_SECRETS_MANAGER feed in
            // aws-config, so clients built from this config behave like
            // clients in a child process given env_vars().
            .service_config(ServiceEndpoints {
                dynamodb: self.dynamodb_endpoint.clone(),
                sqs: self.sqs_endpoint.clone(),
                secrets_manager: self.secrets_manager_endpoint.clone(),
            })
            .build()
    }

    /// Environment variables for child processes (the standard AWS SDK ones).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.as_str()),
            ("AWS_ENDPOINT_URL_SQS", self.sqs_endpoint.as_str()),
            (
                "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                self.secrets_manager_endpoint.as_str(),
            ),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Creates (or reuses) `<prefix><LogicalId>` for every table and queue in
    /// template.yaml.
    pub async fn create_resources(&self, prefix: &str) -> Result<Resources, StackError> {
        let path = template_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| StackError::io(format!("reading {}", path.display()), e))?;
        let spec = template::parse(&text)?;
        resources::create(&self.sdk_config(), &spec, prefix).await
    }

    /// Creates the secret `name` holding `secret_string`, or, when it
    /// exists, stores `secret_string` as its new current version (the old
    /// one becomes `AWSPREVIOUS`, as a rotation does). Returns its ARN.
    pub async fn put_secret(&self, name: &str, secret_string: &str) -> Result<String, StackError> {
        resources::put_secret(&self.sdk_config(), name, secret_string).await
    }
}

/// Names of the created resources, keyed by the template's logical ids.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub tables: BTreeMap<String, String>,
    pub queues: BTreeMap<String, QueueInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub name: String,
    pub url: String,
    pub arn: String,
}

impl Resources {
    /// Physical name of a table. Panics on an unknown logical id: that is a
    /// bug in the caller (or the template), not a runtime condition.
    pub fn table(&self, logical_id: &str) -> &str {
        match self.tables.get(logical_id) {
            Some(name) => name,
            None => panic!(
                "no table {logical_id:?} in template.yaml (have {:?})",
                self.tables.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// URL of a queue. Panics on an unknown logical id, like [`Resources::table`].
    pub fn queue_url(&self, logical_id: &str) -> &str {
        match self.queues.get(logical_id) {
            Some(q) => &q.url,
            None => panic!(
                "no queue {logical_id:?} in template.yaml (have {:?})",
                self.queues.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// `KEY=value` lines naming every resource, as `local-stack up` prints them.
    pub fn env_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, name) in &self.tables {
            out.push(format!("{}={name}", env_key(id, "")));
        }
        for (id, q) in &self.queues {
            out.push(format!("{}={}", env_key(id, "_URL"), q.url));
            out.push(format!("{}={}", env_key(id, "_ARN"), q.arn));
        }
        out
    }
}

/// `TradingTable` -> `TRADING_TABLE`, `FillQueue` + `_URL` -> `FILL_QUEUE_URL`
/// (the variable names template.yaml gives the functions).
fn env_key(logical_id: &str, suffix: &str) -> String {
    let mut key = String::new();
    for (i, c) in logical_id.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            key.push('_');
        }
        key.push(c.to_ascii_uppercase());
    }
    key.push_str(suffix);
    key
}

/// Per-service endpoint URLs for [`aws_config::SdkConfig`].
#[derive(Debug)]
struct ServiceEndpoints {
    dynamodb: String,
    sqs: String,
    secrets_manager: String,
}

impl aws_types::service_config::LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != "AWS_ENDPOINT_URL" {
            return None;
        }
        match key.service_id() {
            "DynamoDB" => Some(self.dynamodb.clone()),
            "SQS" => Some(self.sqs.clone()),
            "Secrets Manager" => Some(self.secrets_manager.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_found_from_any_directory_inside_the_checkout() {
        let root = std::env::temp_dir().join(format!("root-{}", uuid::Uuid::new_v4().simple()));
        let nested = root.join("tests/support");
        std::fs::create_dir_all(root.join("infra/moto")).expect("dirs");
        std::fs::create_dir_all(&nested).expect("dirs");
        assert_eq!(project_root_above(&nested), None, "no markers yet");
        std::fs::write(root.join("template.yaml"), "").expect("write");
        std::fs::write(root.join("infra/moto/server.py"), "").expect("write");
        assert_eq!(project_root_above(&nested), Some(root.clone()));
        assert_eq!(project_root_above(&root), Some(root.clone()));
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[test]
    fn env_keys_follow_the_template_names() {
        assert_eq!(env_key("TradingTable", ""), "TRADING_TABLE");
        assert_eq!(env_key("FillQueue", "_URL"), "FILL_QUEUE_URL");
    }

    #[test]
    fn unique_prefixes_are_valid_names() {
        let p = unique_prefix("conditional decrement");
        assert!(p.starts_with("t-conditional-decrement-"));
        assert!(p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(p, unique_prefix("conditional decrement"));
    }
}
