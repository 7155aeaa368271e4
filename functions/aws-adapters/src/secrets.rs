//! Reading a secret's current value from AWS Secrets Manager, at run time.
//!
//! A function reads its secret when it needs it (and caches it for a while,
//! see the fill webhook's signing secrets), so rotating a secret is a
//! `PutSecretValue`, never a redeploy. The endpoint comes from the SDK's
//! standard configuration (`AWS_ENDPOINT_URL_SECRETS_MANAGER`, or the
//! generic `AWS_ENDPOINT_URL`), so the local stack's emulator serves it too.

use std::time::Duration;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};

/// Why a secret's value could not be read. Neither variant carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretReadError {
    /// Secrets Manager answered, and the answer says the value cannot be had
    /// as asked (no such secret, no permission, no string value): retrying
    /// soon will not help, an operator must act.
    #[error("secret {secret_id}: {detail}")]
    Refused { secret_id: String, detail: String },
    /// No answer, or a throttling or server error: try again later.
    #[error("secret {secret_id} unreachable: {detail}")]
    Unavailable { secret_id: String, detail: String },
}

/// One secret of Secrets Manager, by name or ARN; reads its `AWSCURRENT`
/// version's `SecretString`.
#[derive(Debug, Clone)]
pub struct SecretsManagerSecret {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

/// Error codes that mean "the request was understood and refused".
const REFUSALS: [&str; 5] = [
    "ResourceNotFoundException",
    "AccessDeniedException",
    "DecryptionFailure",
    "InvalidRequestException",
    "InvalidParameterException",
];

/// Budget of one read, retries included: a request that must refresh a
/// secret waits at most this, well inside API Gateway's 30 s.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

impl SecretsManagerSecret {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSecret {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// A client of `config` (its endpoint, region and credentials) whose
    /// reads give up after [`READ_TIMEOUT`].
    pub fn from_config(config: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(READ_TIMEOUT)
            .build();
        let client_config = aws_sdk_secretsmanager::config::Builder::from(config)
            .timeout_config(timeouts)
            .build();
        Self::new(
            aws_sdk_secretsmanager::Client::from_conf(client_config),
            secret_id,
        )
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The current version's `SecretString`.
    pub async fn read_string(&self) -> Result<String, SecretReadError> {
        let answer = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await;
        match answer {
            Ok(output) => {
                output
                    .secret_string()
                    .map(str::to_owned)
                    .ok_or_else(|| SecretReadError::Refused {
                        secret_id: self.secret_id.clone(),
                        detail: "the current version has no SecretString".into(),
                    })
            }
            Err(error) => {
                let refused = error
                    .as_service_error()
                    .and_then(|e| e.code())
                    .is_some_and(|code| REFUSALS.contains(&code));
                let detail = DisplayErrorContext(&error).to_string();
                let secret_id = self.secret_id.clone();
                Err(if refused {
                    SecretReadError::Refused { secret_id, detail }
                } else {
                    SecretReadError::Unavailable { secret_id, detail }
                })
            }
        }
    }
}
