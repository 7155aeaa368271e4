//! HTTP client of the Balances service, implementing the `Balances` port.
//!
//! Classifies every failure by what the caller may conclude: a refused
//! connection means the call never happened; a timeout, a dropped connection
//! or a 5xx means it may have happened, so the caller looks the key up or
//! repeats the call with the same key.

use std::collections::BTreeMap;
use std::time::Duration;

use app::{Balances, BalancesCallError};
use domain::{AccountId, Asset, Balance, Catalog, IdempotencyKey, Operation, OperationRecord};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::wire::{
    problem_type, BalancesBody, OperationBody, OperationRecordBody, Problem, IDEMPOTENCY_KEY_HEADER,
};

/// Default budget of one call, well inside API Gateway's 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct HttpBalances {
    http: reqwest::Client,
    base_url: Url,
    catalog: Catalog,
    signer: Option<Signer>,
}

/// Signs each request with SigV4 for an IAM-authorised API Gateway
/// (service `execute-api`), with the function's own credentials.
#[derive(Debug, Clone)]
struct Signer {
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
    region: String,
}

impl Signer {
    async fn sign(&self, request: &mut reqwest::Request) -> Result<(), BalancesCallError> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let unavailable = |e: String| BalancesCallError::Unavailable(format!("signing: {e}"));
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let identity = credentials.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| unavailable(e.to_string()))?
            .into();
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers,
            SignableBody::Bytes(body),
        )
        .map_err(|e| unavailable(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| unavailable(e.to_string()))?
            .into_parts();
        for (name, value) in instructions.headers() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| unavailable(e.to_string()))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| unavailable(e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

impl HttpBalances {
    pub fn new(
        base_url: &str,
        catalog: Catalog,
        timeout: Duration,
    ) -> Result<Self, BalancesCallError> {
        let invalid = |e: String| BalancesCallError::Invalid(format!("balances base URL: {e}"));
        let base_url = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if base_url.cannot_be_a_base() {
            return Err(invalid("not a base URL".into()));
        }
        let http =
            crate::https::client(timeout).map_err(|e| BalancesCallError::Invalid(e.to_string()))?;
        Ok(HttpBalances {
            http,
            base_url,
            catalog,
            signer: None,
        })
    }

    /// Signs every request with SigV4 using the SDK configuration's
    /// credentials and region (the Balances API is IAM-authorised in AWS).
    pub fn signed_with(
        mut self,
        config: &aws_config::SdkConfig,
    ) -> Result<Self, BalancesCallError> {
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| BalancesCallError::Invalid("no AWS credentials to sign with".into()))?;
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| BalancesCallError::Invalid("no AWS region".into()))?;
        self.signer = Some(Signer {
            credentials,
            region,
        });
        Ok(self)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // Each segment is percent-encoded, so keys like `o1:fill:x/y` stay one segment.
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), BalancesCallError> {
        let mut request = request
            .build()
            .map_err(|e| BalancesCallError::Invalid(e.to_string()))?;
        if let Some(signer) = &self.signer {
            signer.sign(&mut request).await?;
        }
        let response = self.http.execute(request).await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        Ok((status, body.to_vec()))
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, BalancesCallError> {
        // A 2xx we cannot read still took effect: the outcome is unknown to us.
        serde_json::from_slice(body)
            .map_err(|e| BalancesCallError::OutcomeUnknown(format!("unreadable answer: {e}")))
    }

    fn record(&self, body: &OperationRecordBody) -> Result<OperationRecord, BalancesCallError> {
        body.parse(&self.catalog)
            .map_err(|e| BalancesCallError::OutcomeUnknown(format!("unreadable record: {e}")))
    }

    fn problem(&self, status: StatusCode, body: &[u8]) -> BalancesCallError {
        let problem: Option<Problem> = serde_json::from_slice(body).ok();
        let kind = problem.as_ref().map(|p| p.problem_type.as_str());
        let detail = problem
            .as_ref()
            .and_then(|p| p.detail.clone())
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
        match (status, kind) {
            (_, Some(problem_type::KEY_REUSED)) => BalancesCallError::KeyReused,
            (_, Some(problem_type::UNKNOWN_ACCOUNT)) => BalancesCallError::UnknownAccount,
            // Throttled before reaching the service: nothing happened.
            (StatusCode::TOO_MANY_REQUESTS, _) => BalancesCallError::Unavailable(detail),
            (s, _) if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                BalancesCallError::OutcomeUnknown(format!("{status}: {detail}"))
            }
            // Includes 403: this caller's role may not do this (the service's
            // own refusal, or API Gateway's IAM check). Nothing happened, and
            // repeating will not help until the configuration changes.
            _ => BalancesCallError::Invalid(format!("{status}: {detail}")),
        }
    }
}

fn transport_error(error: reqwest::Error) -> BalancesCallError {
    if error.is_connect() {
        BalancesCallError::Unavailable(crate::error_chain(&error))
    } else {
        BalancesCallError::OutcomeUnknown(crate::error_chain(&error))
    }
}

impl HttpBalances {
    /// `POST <prefix>/accounts/{account}/operations`.
    async fn post_operation(
        &self,
        prefix: &[&str],
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        let mut segments = prefix.to_vec();
        segments.extend(["accounts", account.as_str(), "operations"]);
        let request = self
            .http
            .post(self.url(&segments))
            .header(IDEMPOTENCY_KEY_HEADER, key.as_str())
            .json(&OperationBody::from_operation(operation));
        let (status, body) = self.send(request).await?;
        if status.is_success() {
            return self.record(&self.decode(&body)?);
        }
        // A refusal (insufficient funds) is a stored outcome, carried in the problem.
        if let Ok(Problem {
            operation: Some(record),
            ..
        }) = serde_json::from_slice::<Problem>(&body)
        {
            if status == StatusCode::UNPROCESSABLE_ENTITY {
                return self.record(&record);
            }
        }
        Err(self.problem(status, &body))
    }
}

/// The trading route: reserve, settle, release. A deposit sent here is
/// refused by the service (`403`): deposits go through [`HttpBalancesAdmin`].
impl Balances for HttpBalances {
    // The request's own future, not one wrapped around it: no extra layer
    // of state for every caller's future to carry.
    fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> impl std::future::Future<Output = Result<OperationRecord, BalancesCallError>> + Send {
        self.post_operation(&[], account, key, operation)
    }

    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        let url = self.url(&["accounts", account.as_str(), "operations", key.as_str()]);
        let (status, body) = self.send(self.http.get(url)).await?;
        if status.is_success() {
            return self.record(&self.decode(&body)?).map(Some);
        }
        if status == StatusCode::NOT_FOUND {
            let problem: Option<Problem> = serde_json::from_slice(&body).ok();
            if problem.is_some_and(|p| p.problem_type == problem_type::OPERATION_NOT_FOUND) {
                return Ok(None);
            }
        }
        Err(self.problem(status, &body))
    }

    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        let url = self.url(&["accounts", account.as_str(), "balances"]);
        let (status, body) = self.send(self.http.get(url)).await?;
        if !status.is_success() {
            return Err(self.problem(status, &body));
        }
        let body: BalancesBody = self.decode(&body)?;
        body.parse(&self.catalog)
            .map_err(|e| BalancesCallError::OutcomeUnknown(format!("unreadable balances: {e}")))
    }
}

/// The admin route of the Balances API (`POST /admin/accounts/{account}/operations`):
/// deposits, which create value. For operators' tools and test set-up only;
/// the trading functions are never given one, and the service refuses their
/// roles on this route anyway. Reads go to the same routes as the trading
/// client's.
#[derive(Debug, Clone)]
pub struct HttpBalancesAdmin {
    inner: HttpBalances,
}

/// Path prefix of the admin routes.
pub const ADMIN_PREFIX: &str = "admin";

impl HttpBalancesAdmin {
    pub fn new(
        base_url: &str,
        catalog: Catalog,
        timeout: Duration,
    ) -> Result<Self, BalancesCallError> {
        Ok(HttpBalancesAdmin {
            inner: HttpBalances::new(base_url, catalog, timeout)?,
        })
    }

    /// Signs every request with SigV4 (see [`HttpBalances::signed_with`]).
    pub fn signed_with(self, config: &aws_config::SdkConfig) -> Result<Self, BalancesCallError> {
        Ok(HttpBalancesAdmin {
            inner: self.inner.signed_with(config)?,
        })
    }

    /// Runs an admin operation (a deposit) once per (account, key).
    pub async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        self.inner
            .post_operation(&[ADMIN_PREFIX], account, key, operation)
            .await
    }

    pub async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        Balances::lookup(&self.inner, account, key).await
    }

    pub async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        Balances::balances(&self.inner, account).await
    }
}
