//! The platform on one machine, wired as AWS wires it: the emulator with the
//! tables and queues of `template.yaml`, the exchange simulator, and a
//! process hosting the five handlers behind an API Gateway emulation, the
//! fill queue's event source mapping and the reconciler's schedule. No logic
//! of the platform lives here: this crate starts, connects and breaks things.
//!
//! - [`demo`]: the README's first command (trading, faults, kills, recovery, report).
//! - [`host`]: the handler process; [`gateway`]: API Gateway emulation with
//!   [`jwt`] checks and scopes, and the IAM authorizer's caller context (one
//!   loopback listener per calling role); [`sqs_poller`]: the event source
//!   mapping.
//! - [`faults`]: faults injected into the handlers' Balances calls.
//! - [`operator`]: an on-call engineer's view (order timeline, flagged
//!   orders, DLQ, an operator's decision), against the local stack or a
//!   deployed one ([`target`]); [`format`]: times, durations and amounts.

pub mod demo;
pub mod faults;
pub mod format;
pub mod gateway;
pub mod host;
pub mod jwt;
pub mod operator;
pub mod sqs_poller;
pub mod target;

use std::time::Duration;

use anyhow::{bail, Context};
use local_stack::Stack;

use crate::host::{HostConfig, CONFIG_VARIABLE};

/// The handler process, started from this same executable.
pub struct HostProcess {
    child: tokio::process::Child,
}

impl HostProcess {
    /// Starts `<this executable> serve-handlers` and waits until its API answers.
    pub async fn spawn(stack: &Stack, config: &HostConfig) -> anyhow::Result<HostProcess> {
        let executable = std::env::current_exe().context("locating this executable")?;
        let mut command = tokio::process::Command::new(executable);
        command
            .arg("serve-handlers")
            .env(CONFIG_VARIABLE, serde_json::to_string(config)?)
            .kill_on_drop(true);
        for (name, value) in stack.env_vars() {
            command.env(name, value);
        }
        command.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        // Its logs (and metric lines) go to a file, out of the demo's way.
        let log_path = handler_log_path();
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).context("creating .local")?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .context("opening the handler log")?;
        command.stdout(log.try_clone()?).stderr(log);
        let child = command.spawn().context("starting the handler process")?;
        let host = HostProcess { child };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(config.api_listen)
                .await
                .is_ok()
                && tokio::net::TcpStream::connect(config.balances_listen)
                    .await
                    .is_ok()
            {
                return Ok(host);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the handler process did not start listening")
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// Stops the Balances faults the handlers inject (`SIGUSR1`).
    pub fn stop_faults(&self) -> anyhow::Result<()> {
        // No id: the process has exited (and pid 0 would signal our own group).
        let pid = self.child.id().context("the handler process has exited")?;
        let pid = libc::pid_t::try_from(pid).context("the handler process's pid")?;
        // SAFETY: kill(2) sends a signal to the child this struct owns.
        if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
            bail!(
                "signalling the handler process: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// SIGKILL: no shutdown hook runs, requests in flight are cut.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child
            .kill()
            .await
            .context("killing the handler process")
    }
}

/// Where the handler process writes its logs (JSON lines, as in Lambda)
/// and metric lines: `.local/handlers.log` under the checkout.
pub fn handler_log_path() -> std::path::PathBuf {
    local_stack::workspace_root()
        .join(".local")
        .join("handlers.log")
}

/// A loopback address with a port free right now.
pub fn free_port() -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
