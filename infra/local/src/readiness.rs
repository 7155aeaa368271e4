//! `cargo run -p local -- readiness`: can this checkout be deployed? Installs
//! the pinned deploy tools, lints `template.yaml` as `sam` and as cfn-lint
//! (with serverless-rules) see it, cross-builds the five functions for Lambda
//! (arm64, as `sam build` does) and reports each binary's size. Fails if any
//! step fails.
//!
//! Not part of CI: the arm64 release build alone takes longer than CI's
//! whole budget allows for it.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

/// The deploy tools' pins (SAM CLI, cargo-lambda and, through it, zig).
const REQUIREMENTS: &str = "infra/moto/deploy-requirements.txt";
/// Apart from the emulator's `.local/venv`: the SAM CLI pins other versions
/// of packages the emulator pins too (see the requirements file).
const VENV: &str = ".local/deploy-venv";
/// The functions, by package (and binary) name.
const FUNCTIONS: [&str; 5] = [
    "place-order",
    "fill-webhook",
    "fill-processor",
    "reconciler",
    "balances",
];
/// Issue 18's size budget for one function's binary: a small zip, a short
/// cold start.
const MAX_BINARY_BYTES: u64 = 8 * 1024 * 1024;

struct Step {
    name: String,
    ok: bool,
    took: Duration,
}

/// Runs every step (a failed lint does not stop the build) and fails if any failed.
pub fn run() -> anyhow::Result<()> {
    let root = local_stack::workspace_root();
    let started = Instant::now();
    ensure_tools(&root)?;
    let mut steps = vec![Step {
        name: format!("install {REQUIREMENTS}"),
        ok: true,
        took: started.elapsed(),
    }];
    let template = root.join("template.yaml");
    steps.push(step(
        "sam validate --lint",
        tool(&root, "sam")
            .args(["validate", "--lint", "--template"])
            .arg(&template),
    ));
    steps.push(step(
        "cfn-lint with serverless-rules",
        tool(&root, "cfn-lint")
            .arg(&template)
            .args(["--append-rules", "cfn_lint_serverless.rules"]),
    ));
    let mut build = tool(&root, "cargo-lambda");
    build.args(["lambda", "build", "--release", "--arm64"]);
    for function in FUNCTIONS {
        build.args(["--package", function]);
    }
    steps.push(step("cargo lambda build --release --arm64", &mut build));
    let sizes_ok = steps.last().is_some_and(|s| s.ok) && report_sizes(&root)?;

    println!("\nreadiness:");
    for s in &steps {
        let verdict = if s.ok { "ok" } else { "FAILED" };
        println!("  {verdict:6} {:>7.1} s  {}", s.took.as_secs_f64(), s.name);
    }
    if steps.iter().any(|s| !s.ok) || !sizes_ok {
        bail!("not ready to deploy");
    }
    println!("ready to deploy");
    Ok(())
}

/// A command from the deploy venv, with the venv first on PATH: cargo-lambda
/// finds its zig (the `ziglang` package) through the venv's python. SAM's
/// telemetry is off: readiness talks to no service.
fn tool(root: &Path, name: &str) -> Command {
    let bin = root.join(VENV).join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    let mut command = Command::new(bin.join(name));
    command
        .current_dir(root)
        .env("PATH", std::env::join_paths(paths).unwrap_or(path))
        .env("SAM_CLI_TELEMETRY", "0")
        // `sam validate` wants a region even when it only lints.
        .env(
            "AWS_DEFAULT_REGION",
            std::env::var("AWS_DEFAULT_REGION").unwrap_or_else(|_| "us-east-1".into()),
        );
    command
}

/// Runs one step with its output on the terminal, where its findings belong.
fn step(name: &str, command: &mut Command) -> Step {
    println!("\n== {name}");
    let started = Instant::now();
    let ok = match command.stdin(Stdio::null()).status() {
        Ok(status) => status.success(),
        Err(e) => {
            println!("could not start {name}: {e}");
            false
        }
    };
    Step {
        name: name.to_string(),
        ok,
        took: started.elapsed(),
    }
}

/// Each function's `bootstrap` as cargo-lambda left it, against the budget.
fn report_sizes(root: &Path) -> anyhow::Result<bool> {
    let lambda_dir = target_dir(root)?.join("lambda");
    println!(
        "\n{:16} {:>10}  (budget {MAX_BINARY_BYTES} bytes)",
        "function", "bytes"
    );
    let mut ok = true;
    for function in FUNCTIONS {
        let path = lambda_dir.join(function).join("bootstrap");
        let bytes = fs::metadata(&path)
            .with_context(|| format!("{}", path.display()))?
            .len();
        let over = bytes > MAX_BINARY_BYTES;
        ok &= !over;
        let mark = if over { "  OVER BUDGET" } else { "" };
        println!("{function:16} {bytes:>10}{mark}");
    }
    Ok(ok)
}

/// Where Cargo puts this workspace's builds (CARGO_TARGET_DIR included).
fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed");
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata gave no target_directory")
}

/// Creates the deploy venv and installs the pins, unless it already holds
/// exactly this requirements file (its hash is stamped in the venv), the way
/// the local stack installs the emulator.
fn ensure_tools(root: &Path) -> anyhow::Result<()> {
    let venv = root.join(VENV);
    let requirements = root.join(REQUIREMENTS);
    let stamp = venv.join("requirements.sha256");
    let wanted = format!(
        "{:x}",
        Sha256::digest(
            fs::read(&requirements).with_context(|| format!("{}", requirements.display()))?
        )
    );
    let installed = || {
        fs::read_to_string(&stamp)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let python = venv.join("bin").join("python");
    if installed().as_deref() == Some(wanted.as_str()) && python.exists() {
        return Ok(());
    }
    let _lock = lock(&root.join(".local").join("deploy-install.lock"))?;
    // Someone may have installed while we waited for the lock.
    if installed().as_deref() == Some(wanted.as_str()) && python.exists() {
        return Ok(());
    }
    let log = root.join(".local").join("deploy-pip.log");
    println!(
        "installing the deploy tools into {} (log: {})",
        venv.display(),
        log.display()
    );
    // The stamp goes first so a half-finished install is never taken as done.
    let _ = fs::remove_file(&stamp);
    let system_python = std::env::var("LOCAL_STACK_PYTHON").unwrap_or_else(|_| "python3".into());
    logged(
        Command::new(system_python).args(["-m", "venv"]).arg(&venv),
        &log,
    )?;
    logged(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        &log,
    )?;
    fs::write(&stamp, format!("{wanted}\n")).with_context(|| format!("writing {}", stamp.display()))
}

/// An exclusive lock on `path`, released when the file is dropped.
fn lock(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

fn logged(command: &mut Command, log_path: &Path) -> anyhow::Result<()> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status}); see {}", log_path.display());
    }
    Ok(())
}
