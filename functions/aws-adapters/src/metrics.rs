//! CloudWatch Embedded Metric Format: one JSON line on stdout becomes
//! metrics, with the same namespace and dimension (`Function`) from every
//! function, so one dashboard and one set of alarms cover them all.

use axum::body::{Body, HttpBody as _};
use axum::http::StatusCode;
use axum::response::Response;

/// Namespace of every metric the platform emits.
pub const NAMESPACE: &str = "TradingPlatform";

/// One EMF line: `function` is the dimension, each `(name, value)` a count.
pub fn line(function: &str, counts: &[(&str, u64)]) -> String {
    let definitions: Vec<serde_json::Value> = counts
        .iter()
        .map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"}))
        .collect();
    let mut body = serde_json::json!({
        "_aws": {
            "Timestamp": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        },
        "Function": function,
    });
    if let Some(map) = body.as_object_mut() {
        for (name, value) in counts {
            map.insert((*name).to_owned(), serde_json::json!(value));
        }
    }
    body.to_string()
}

/// Reads a handler's answer back for its metrics, as `T`, when its body is
/// known to be at most `max_bytes` (a larger or streamed one is not read).
/// Answers the response to send on, unchanged.
///
/// The handlers answer from memory: a body of known, small size cannot fail
/// to read. Should it, the caller gets a `500` (and repeats its request),
/// never a truncated answer.
pub async fn read_back<T: serde::de::DeserializeOwned>(
    response: Response,
    max_bytes: u64,
) -> (Response, Option<T>) {
    let small = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= max_bytes);
    if !small {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, max_bytes as usize).await {
        Ok(bytes) => {
            let value = serde_json::from_slice(&bytes).ok();
            (Response::from_parts(parts, Body::from(bytes)), value)
        }
        Err(error) => {
            tracing::error!(%error, "answer unreadable after the handler");
            let mut response = Response::from_parts(parts, Body::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            (response, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_each_metric_and_carries_its_value() {
        let text = line(
            "fill-processor",
            &[("FillsApplied", 3), ("ReportsSetAside", 1)],
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["Function"], "fill-processor");
        assert_eq!(value["FillsApplied"], 3);
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            NAMESPACE
        );
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "ReportsSetAside"
        );
    }
}
