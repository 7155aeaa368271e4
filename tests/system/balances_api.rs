//! The Balances HTTP API on the local stack: replays, bad input, and lost responses.

use app::{Balances, BalancesCallError};
use aws_adapters::balances_http::wire::{
    OperationRecordBody, Problem, IDEMPOTENCY_KEY_HEADER, PROBLEM_CONTENT_TYPE, REPLAYED_HEADER,
};
use aws_adapters::balances_http::{HttpBalances, HttpBalancesAdmin, DEFAULT_TIMEOUT};
use balances::MAX_BODY_BYTES;
use domain::{Asset, Balance, Catalog, Outcome};
use reqwest::StatusCode;
use system_tests::conformance::balances::{balance_of, deposit, funded_account, key, reserve};
use system_tests::faulty_proxy::{FaultyProxy, Mode};
use system_tests::{new_account, spawn_balances, BalancesApp};

fn operations_url(app: &BalancesApp, account: &str) -> String {
    format!("{}/accounts/{account}/operations", app.base_url)
}

/// The same request with the same key ten times over HTTP: ten identical
/// bodies, the nine repeats marked as replays, one balance movement.
#[tokio::test]
async fn replays_answer_identically_and_move_once() {
    let app = spawn_balances("replay").await;
    let account = funded_account(&app.client, "replay", 10_000).await;
    let http = reqwest::Client::new();
    let mut bodies = Vec::new();
    for attempt in 0..10 {
        let response = http
            .post(operations_url(&app, account.as_str()))
            .header(IDEMPOTENCY_KEY_HEADER, "o-1:reserve")
            .json(&serde_json::json!({"type": "reserve", "asset": "USD", "amount": "12.34"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
        let replayed = response.headers().get(REPLAYED_HEADER).is_some();
        assert_eq!(replayed, attempt > 0, "attempt {attempt}");
        bodies.push(response.bytes().await.expect("body"));
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    let record: OperationRecordBody = serde_json::from_slice(&bodies[0]).expect("record");
    assert_eq!(record.idempotency_key, "o-1:reserve");
    assert_eq!(
        balance_of(&app.client, &account, &Asset::Cash).await,
        Balance {
            available: 8_766,
            reserved: 1_234,
            owed: 0,
        }
    );
}

/// An insufficient-funds refusal is a `422` carrying the stored record, the same every time.
#[tokio::test]
async fn refusal_is_a_problem_with_the_record() {
    let app = spawn_balances("refusal").await;
    let account = funded_account(&app.client, "refusal", 100).await;
    let http = reqwest::Client::new();
    let send = || {
        http.post(operations_url(&app, account.as_str()))
            .header(IDEMPOTENCY_KEY_HEADER, "too-much")
            .json(&serde_json::json!({"type": "reserve", "asset": "USD", "amount": "1.01"}))
            .send()
    };
    let first = send().await.expect("sent");
    assert_eq!(first.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(first.headers()["content-type"], PROBLEM_CONTENT_TYPE);
    let first: Problem = first.json().await.expect("problem");
    let second: Problem = send().await.expect("sent").json().await.expect("problem");
    assert_eq!(first, second);
    assert_eq!(
        first
            .operation
            .expect("record")
            .failure
            .expect("failure")
            .code,
        "insufficient_funds"
    );
}

struct BadRequest {
    what: &'static str,
    account: String,
    key: Option<String>,
    content_type: &'static str,
    body: Vec<u8>,
    status: StatusCode,
}

fn bad(what: &'static str, account: &str, body: &str, status: StatusCode) -> BadRequest {
    BadRequest {
        what,
        account: account.to_owned(),
        key: Some(format!("bad-{what}")),
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
        status,
    }
}

/// Each malformed request gets a 4xx problem+json and changes nothing in the table.
#[tokio::test]
async fn bad_input_is_refused_without_any_change() {
    let app = spawn_balances("bad-input").await;
    let account = funded_account(&app.client, "bad", 10_000).await;
    let acct = account.as_str();
    let ok_body = r#"{"type":"reserve","asset":"USD","amount":"1.00"}"#;
    let mut cases = vec![
        bad(
            "malformed JSON",
            acct,
            r#"{"type":"reserve","asset":"USD","amount":"#,
            StatusCode::BAD_REQUEST,
        ),
        bad("not an object", acct, "[1,2,3]", StatusCode::BAD_REQUEST),
        bad(
            "unknown operation",
            acct,
            r#"{"type":"withdraw","asset":"USD","amount":"1.00"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "unknown field",
            acct,
            r#"{"type":"reserve","asset":"USD","amount":"1.00","memo":"x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "missing field",
            acct,
            r#"{"type":"reserve","asset":"USD"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "number instead of string",
            acct,
            r#"{"type":"reserve","asset":"USD","amount":1.0}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "zero amount",
            acct,
            r#"{"type":"reserve","asset":"USD","amount":"0.00"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "negative amount",
            acct,
            r#"{"type":"reserve","asset":"USD","amount":"-1.00"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "overflowing amount",
            acct,
            r#"{"type":"deposit","asset":"USD","amount":"99999999999999999999999"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "amount above the limit",
            acct,
            r#"{"type":"deposit","asset":"USD","amount":"10000000000000.01"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "too many decimals",
            acct,
            r#"{"type":"reserve","asset":"USD","amount":"1.001"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "fractional shares",
            acct,
            r#"{"type":"reserve","asset":"AAPL","amount":"1.5"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "exponent",
            acct,
            r#"{"type":"reserve","asset":"USD","amount":"1e3"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "unknown asset",
            acct,
            r#"{"type":"deposit","asset":"DOGE","amount":"1"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "unknown symbol in settle",
            acct,
            r#"{"type":"settle","symbol":"DOGE","side":"buy","quantity":"1","price":"1.00"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "sub-cent price",
            acct,
            r#"{"type":"settle","symbol":"AAPL","side":"buy","quantity":"1","price":"1.001"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "unknown side",
            acct,
            r#"{"type":"settle","symbol":"AAPL","side":"short","quantity":"1","price":"1.00"}"#,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "invalid account id",
            "not%20valid",
            ok_body,
            StatusCode::BAD_REQUEST,
        ),
        bad(
            "unknown account",
            "nobody-here",
            ok_body,
            StatusCode::NOT_FOUND,
        ),
    ];
    cases.push(BadRequest {
        key: None,
        ..bad("missing key", acct, ok_body, StatusCode::BAD_REQUEST)
    });
    cases.push(BadRequest {
        key: Some("k".repeat(256)),
        ..bad("oversized key", acct, ok_body, StatusCode::BAD_REQUEST)
    });
    cases.push(BadRequest {
        key: Some(String::new()),
        ..bad("empty key", acct, ok_body, StatusCode::BAD_REQUEST)
    });
    cases.push(BadRequest {
        content_type: "text/plain",
        ..bad(
            "wrong content type",
            acct,
            ok_body,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
    });
    cases.push(BadRequest {
        content_type: "",
        ..bad(
            "no content type",
            acct,
            ok_body,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
    });
    let padded = format!(
        r#"{{"type":"reserve","asset":"USD","amount":"1.00","pad":"{}"}}"#,
        " ".repeat(MAX_BODY_BYTES)
    );
    cases.push(bad(
        "body over the limit",
        acct,
        &padded,
        StatusCode::PAYLOAD_TOO_LARGE,
    ));

    let http = reqwest::Client::new();
    let before = app.snapshot().await;
    for case in cases {
        let mut request = http
            .post(operations_url(&app, &case.account))
            .body(case.body.clone());
        if !case.content_type.is_empty() {
            request = request.header("content-type", case.content_type);
        }
        if let Some(key) = &case.key {
            request = request.header(IDEMPOTENCY_KEY_HEADER, key);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), case.status, "{}", case.what);
        assert_eq!(
            response.headers()["content-type"],
            PROBLEM_CONTENT_TYPE,
            "{}",
            case.what
        );
        let problem: Problem = response.json().await.expect("problem body");
        assert!(
            problem.detail.is_some_and(|d| !d.is_empty()),
            "{} explains itself",
            case.what
        );
        assert_eq!(
            app.snapshot().await,
            before,
            "{} changed nothing",
            case.what
        );
    }
}

/// The request takes effect but its response is lost. The caller looks the
/// key up and finds the stored outcome; a retry with the same key moves nothing twice.
#[tokio::test]
async fn lost_response_is_recovered_by_key() {
    let app = spawn_balances("lost").await;
    let account = funded_account(&app.client, "lost", 10_000).await;
    let upstream = app
        .base_url
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let proxy = FaultyProxy::spawn(upstream).await;
    proxy.set(Mode::LoseResponse);
    let lossy =
        HttpBalances::new(&proxy.url(), Catalog::us_equities(), DEFAULT_TIMEOUT).expect("client");

    let lost = lossy
        .execute(&account, &key("o-9:reserve"), &reserve(4_000))
        .await;
    assert!(
        matches!(lost, Err(BalancesCallError::OutcomeUnknown(_))),
        "{lost:?}"
    );

    let found = app
        .client
        .lookup(&account, &key("o-9:reserve"))
        .await
        .expect("lookup")
        .expect("it took effect");
    assert_eq!(found.outcome, Outcome::Succeeded);
    let retried = app
        .client
        .execute(&account, &key("o-9:reserve"), &reserve(4_000))
        .await
        .expect("retry");
    assert_eq!(retried, found);
    assert_eq!(
        balance_of(&app.client, &account, &Asset::Cash).await,
        Balance {
            available: 6_000,
            reserved: 4_000,
            owed: 0,
        }
    );
}

/// A request that never reached the service is reported as certainly not applied.
#[tokio::test]
async fn refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let client = HttpBalances::new(
        &format!("http://{address}"),
        Catalog::us_equities(),
        DEFAULT_TIMEOUT,
    )
    .expect("client");
    let account = new_account("nowhere");
    let result = client.execute(&account, &key("k"), &reserve(1)).await;
    assert!(
        matches!(result, Err(BalancesCallError::Unavailable(_))),
        "{result:?}"
    );
}

/// Lookups of unknown keys and unknown routes answer problem+json 404s.
#[tokio::test]
async fn lookups_and_unknown_routes() {
    let app = spawn_balances("lookup").await;
    let account = funded_account(&app.client, "lookup", 100).await;
    let http = reqwest::Client::new();
    let missing = http
        .get(format!("{}/never", operations_url(&app, account.as_str())))
        .send()
        .await
        .expect("sent");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let route = http
        .get(format!("{}/nope", app.base_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(route.status(), StatusCode::NOT_FOUND);
    assert_eq!(route.headers()["content-type"], PROBLEM_CONTENT_TYPE);
}

/// In AWS the Balances API is IAM-authorised: each client signs each request
/// with SigV4 (service `execute-api`), body and idempotency key included;
/// the admin client's deposits go to the admin route.
#[tokio::test]
async fn signed_client_sends_sigv4_headers() {
    use std::sync::{Arc, Mutex};
    type Seen = Arc<Mutex<Vec<(String, axum::http::HeaderMap)>>>;
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let router = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let recorder = recorder.clone();
            async move {
                recorder
                    .lock()
                    .expect("lock")
                    .push((uri.path().to_owned(), headers));
                StatusCode::SERVICE_UNAVAILABLE
            }
        },
    );
    let address = system_tests::serve(router).await;
    let stack = local_stack::Stack::at("http://127.0.0.1:1");
    let client = HttpBalances::new(
        &format!("http://{address}"),
        Catalog::us_equities(),
        DEFAULT_TIMEOUT,
    )
    .expect("client")
    .signed_with(&stack.sdk_config())
    .expect("signing configured");
    let account = new_account("signed");
    let _ = client.execute(&account, &key("k-1"), &reserve(100)).await;
    let (path, headers) = seen.lock().expect("lock").pop().expect("a request arrived");
    assert_eq!(path, format!("/accounts/{account}/operations"));
    let authorization = headers["authorization"].to_str().expect("text");
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential="),
        "{authorization}"
    );
    assert!(
        authorization.contains("/us-east-1/execute-api/aws4_request"),
        "{authorization}"
    );
    assert!(
        authorization.contains("idempotency-key"),
        "the key is signed: {authorization}"
    );
    assert!(headers.contains_key("x-amz-date"));

    let admin = HttpBalancesAdmin::new(
        &format!("http://{address}"),
        Catalog::us_equities(),
        DEFAULT_TIMEOUT,
    )
    .expect("client")
    .signed_with(&stack.sdk_config())
    .expect("signing configured");
    let _ = admin.execute(&account, &key("k-2"), &deposit(100)).await;
    let (path, headers) = seen.lock().expect("lock").pop().expect("a request arrived");
    assert_eq!(path, format!("/admin/accounts/{account}/operations"));
    let authorization = headers["authorization"].to_str().expect("text");
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=")
            && authorization.contains("/us-east-1/execute-api/aws4_request"),
        "{authorization}"
    );
}
