//! Start-to-ready time of a Lambda binary: how long from `exec` until the
//! binary, having run its cold-start code (settings, SDK config, clients),
//! asks the Runtime API for its first event.
//!
//! A fake Runtime API listens on 127.0.0.1; the binary is started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at it and a clean, Lambda-like
//! environment (dummy credentials, every endpoint on loopback, no profile
//! files), and the clock stops when its first `GET .../invocation/next`
//! arrives. The binary is then killed: nothing is ever invoked, and no
//! endpoint other than the fake API is contacted at start.
//!
//! - [`lambda_env`] and [`function_env`]: the environment of each function.
//! - [`measure_start`]: one start; [`Summary`]: median and p90 of many.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The request a runtime makes when it is ready for an event.
pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";

/// The five functions, as their binaries are named.
pub const FUNCTIONS: [&str; 5] = [
    "place-order",
    "fill-webhook",
    "fill-processor",
    "reconciler",
    "balances",
];

/// A start slower than this is a hang (waiting on a network call, say), not a
/// slow start: the run fails instead of waiting for ever.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a waiting measurement checks whether the binary has exited.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// A loopback address where nothing listens: a binary that calls out at start
/// fails fast instead of reaching anything real.
const NOWHERE: &str = "http://127.0.0.1:9";

/// What Lambda itself sets for every function (with dummy values), minus
/// `AWS_LAMBDA_RUNTIME_API`, which [`measure_start`] adds.
pub fn lambda_env(function: &str) -> Vec<(String, String)> {
    let pairs = [
        ("AWS_LAMBDA_FUNCTION_NAME", function),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/start-probe"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "start-probe"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDSTARTPROBE"),
        ("AWS_SECRET_ACCESS_KEY", "start-probe-secret"),
        ("AWS_SESSION_TOKEN", "start-probe-token"),
        ("TZ", ":UTC"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        // No profile files, as in Lambda: the SDK's config loader would
        // otherwise read this machine's ~/.aws at start.
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("AWS_ENDPOINT_URL_DYNAMODB", NOWHERE),
        ("AWS_ENDPOINT_URL_SQS", NOWHERE),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", NOWHERE),
        // As template.yaml's Globals.
        ("RUST_LOG", "info"),
        ("BALANCES_IAM_AUTH", "true"),
        ("TRADING_TABLE", "TradingTable"),
        ("BALANCES_TABLE", "BalancesTable"),
        ("VENUE_PROFILE", "tombstone"),
    ];
    owned(&pairs)
}

/// The function's own variables (template.yaml), with dummy values.
pub fn function_env(function: &str) -> anyhow::Result<Vec<(String, String)>> {
    let queue = "http://127.0.0.1:9/000000000000/FillQueue";
    let dead_letters = "http://127.0.0.1:9/000000000000/FillDeadLetterQueue";
    let orders = [("BALANCES_URL", NOWHERE), ("EXCHANGE_BASE_URL", NOWHERE)];
    let pairs: Vec<(&str, &str)> = match function {
        "place-order" | "reconciler" => orders.to_vec(),
        "fill-processor" => [&orders[..], &[("FILL_DEAD_LETTER_QUEUE_URL", dead_letters)]].concat(),
        "fill-webhook" => vec![
            ("FILL_QUEUE_URL", queue),
            ("FILL_DEAD_LETTER_QUEUE_URL", dead_letters),
            // Read from Secrets Manager at the first delivery, not at start.
            (
                "WEBHOOK_SECRET_ID",
                "arn:aws:secretsmanager:us-east-1:000000000000:secret:start-probe",
            ),
        ],
        "balances" => vec![
            (
                "BALANCES_TRADING_ROLES",
                "PlaceOrderRole,ReconcilerRole,FillProcessorRole",
            ),
            ("BALANCES_ADMIN_ROLES", ""),
        ],
        other => bail!(
            "unknown function {other:?} (known: {})",
            FUNCTIONS.join(", ")
        ),
    };
    Ok(owned(&pairs))
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Starts `binary` once with exactly `env` (plus the fake API's address) and
/// returns the time from spawn to its first `next` request.
pub fn measure_start(binary: &Path, env: &[(String, String)]) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the fake Runtime API")?;
    let address = listener.local_addr()?;
    let (arrived, arrival) = mpsc::channel();
    // The accept runs on its own thread so the clock stops when the request
    // arrives, not when a polling loop next looks.
    let server = thread::spawn(move || {
        let _ = arrived.send(first_request(&listener).map(|path| (Instant::now(), path)));
    });
    let started = Instant::now();
    let child = Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut child = KillOnDrop(child);
    // Waiting in slices only to notice a binary that exited; the arrival time
    // is stamped by the server thread, so the slices do not blur it.
    let mut exited = None;
    let result = loop {
        match arrival.recv_timeout(EXIT_POLL) {
            Ok(result) => break Some(result),
            Err(_) if exited.is_some() || started.elapsed() > START_TIMEOUT => break None,
            // One more slice after an exit: its last request may be in flight.
            Err(_) => exited = child.0.try_wait().ok().flatten(),
        }
    };
    child.kill();
    if result.is_none() {
        // Unblock the accept so its thread ends.
        let _ = TcpStream::connect(address);
    }
    let _ = server.join();
    let (at, path) = match result {
        Some(Ok(arrival)) => arrival,
        Some(Err(e)) => return Err(e.context(child.stderr())),
        None => bail!(
            "no `next` request within {START_TIMEOUT:?} (exit: {exited:?}); stderr:\n{}",
            child.stderr()
        ),
    };
    if !path.starts_with(NEXT_PATH) {
        bail!("first request was {path:?}, not {NEXT_PATH}");
    }
    Ok(at.saturating_duration_since(started))
}

/// Accepts one connection and returns the path of its request line.
fn first_request(listener: &TcpListener) -> anyhow::Result<String> {
    let (stream, _) = listener.accept().context("accepting")?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .context("reading the request line")?;
    // "GET /path HTTP/1.1"
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        [_, path, _] => Ok(path.to_string()),
        _ => bail!("not an HTTP request line: {line:?}"),
    }
}

/// The child is killed and reaped however the measurement ends.
struct KillOnDrop(Child);

impl KillOnDrop {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Its stderr so far (call after [`KillOnDrop::kill`]).
    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.0.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Order statistics of a set of start times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub runs: usize,
    pub min: Duration,
    pub median: Duration,
    pub p90: Duration,
    pub max: Duration,
}

impl Summary {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: usize| sorted[(sorted.len() * p).div_ceil(100).max(1) - 1];
        Some(Summary {
            runs: sorted.len(),
            min: *sorted.first()?,
            median: rank(50),
            p90: rank(90),
            max: *sorted.last()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn summary_uses_nearest_rank() {
        let s = Summary::of(&ms(&[10, 1, 9, 2, 8, 3, 7, 4, 6, 5])).unwrap();
        assert_eq!(
            (s.min, s.median, s.p90, s.max),
            (
                Duration::from_millis(1),
                Duration::from_millis(5),
                Duration::from_millis(9),
                Duration::from_millis(10)
            )
        );
        assert_eq!(
            Summary::of(&ms(&[4])).unwrap().p90,
            Duration::from_millis(4)
        );
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn every_function_has_its_environment() {
        for function in FUNCTIONS {
            assert!(function_env(function).is_ok(), "{function}");
        }
        assert!(function_env("nope").is_err());
    }

    /// GIVEN a "runtime" that asks for its first event
    /// WHEN it is started against the fake API
    /// THEN the time until that request is measured.
    #[test]
    fn measures_until_the_first_next_request() {
        let script = std::env::temp_dir().join(format!("lambda-start-{}.sh", std::process::id()));
        std::fs::write(
            &script,
            "#!/bin/bash\nexec 3<>/dev/tcp/${AWS_LAMBDA_RUNTIME_API%:*}/${AWS_LAMBDA_RUNTIME_API#*:}\n\
             printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\n\\r\\n' >&3\nsleep 30\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let took = measure_start(&script, &lambda_env("probe"));
        let _ = std::fs::remove_file(&script);
        let took = took.unwrap();
        assert!(took < START_TIMEOUT, "{took:?}");
    }

    #[test]
    fn a_binary_that_exits_is_reported_with_its_stderr() {
        let error = measure_start(Path::new("/bin/false"), &[]).unwrap_err();
        assert!(error.to_string().contains("no `next` request"), "{error:#}");
    }
}
