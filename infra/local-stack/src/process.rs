//! Installing, starting, finding and stopping the emulator process.
//!
//! Everything here is blocking and guarded by file locks under `.local/`, so
//! that test processes running in parallel (nextest runs one per test) neither
//! install twice nor start two emulators: the first one in installs/starts,
//! the others wait on the lock and then find it running.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::{workspace_root, StackError, DEFAULT_PORT};

/// How long a fresh emulator may take to answer (importing moto takes a few
/// seconds; a cold disk cache on a loaded 2-core machine takes longer).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Grace period between SIGTERM and SIGKILL in [`stop`].
const STOP_GRACE: Duration = Duration::from_secs(5);
const HEALTH_PATH: &str = "/_local_stack/health";
const EMULATOR_ID: &str = "local-stack-moto";

fn local_dir() -> Result<PathBuf, StackError> {
    let dir = workspace_root().join(".local");
    fs::create_dir_all(&dir)
        .map_err(|e| StackError::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

fn venv_dir() -> PathBuf {
    workspace_root().join(".local").join("venv")
}

fn requirements_path() -> PathBuf {
    workspace_root().join("infra/moto/requirements.txt")
}

fn server_path() -> PathBuf {
    workspace_root().join("infra/moto/server.py")
}

/// Path of an executable in the venv's bin dir, e.g. `python_tool("cfn-lint")`.
/// Call [`ensure_installed`] first.
pub fn python_tool(name: &str) -> PathBuf {
    venv_dir().join("bin").join(name)
}

/// An exclusive lock on `.local/<name>.lock`, released when dropped.
struct FileLock(File);

impl FileLock {
    fn acquire(name: &str) -> Result<FileLock, StackError> {
        let path = local_dir()?.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StackError::io(format!("opening {}", path.display()), e))?;
        file.lock()
            .map_err(|e| StackError::io(format!("locking {}", path.display()), e))?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn sha256_files(paths: &[PathBuf]) -> Result<String, StackError> {
    let mut hasher = Sha256::new();
    for path in paths {
        let bytes =
            fs::read(path).map_err(|e| StackError::io(format!("reading {}", path.display()), e))?;
        hasher.update(&bytes);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Identifies the emulator's code: a running emulator whose fingerprint
/// differs is stale (server.py or the pins changed) and is restarted.
fn fingerprint() -> Result<String, StackError> {
    Ok(sha256_files(&[requirements_path(), server_path()])?[..16].to_string())
}

/// Creates `.local/venv` and installs the pinned requirements, unless the venv
/// already holds exactly this requirements.txt (its hash is stored in the venv).
pub fn ensure_installed() -> Result<(), StackError> {
    let venv = venv_dir();
    let stamp = venv.join("requirements.sha256");
    let wanted = sha256_files(&[requirements_path()])?;
    let installed = |stamp: &Path| fs::read_to_string(stamp).ok().map(|s| s.trim().to_string());
    if installed(&stamp).as_deref() == Some(wanted.as_str()) && python_tool("python").exists() {
        return Ok(());
    }
    let _lock = FileLock::acquire("install")?;
    // Someone may have installed while we waited for the lock.
    if installed(&stamp).as_deref() == Some(wanted.as_str()) && python_tool("python").exists() {
        return Ok(());
    }
    let log_path = local_dir()?.join("pip.log");
    let python = std::env::var("LOCAL_STACK_PYTHON").unwrap_or_else(|_| "python3".to_string());
    eprintln!(
        "local-stack: installing the emulator into {} (log: {})",
        venv.display(),
        log_path.display()
    );
    // The stamp goes first so a half-finished install is never taken as done.
    let _ = fs::remove_file(&stamp);
    run_logged(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        &log_path,
        "creating the venv",
    )?;
    run_logged(
        Command::new(python_tool("python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(requirements_path()),
        &log_path,
        "pip install -r infra/moto/requirements.txt",
    )?;
    fs::write(&stamp, format!("{wanted}\n"))
        .map_err(|e| StackError::io(format!("writing {}", stamp.display()), e))?;
    Ok(())
}

fn run_logged(cmd: &mut Command, log_path: &Path, what: &str) -> Result<(), StackError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| StackError::io(format!("opening {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| StackError::io("duplicating the log handle", e))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .status()
        .map_err(|e| StackError::Install(format!("{what}: cannot run {cmd:?}: {e}")))?;
    if !status.success() {
        return Err(StackError::Install(format!(
            "{what} exited with {status}; last lines of {}:\n{}",
            log_path.display(),
            tail(log_path, 20)
        )));
    }
    Ok(())
}

/// Last `lines` lines of a log file (for error messages).
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(crate) fn port() -> Result<u16, StackError> {
    match std::env::var("LOCAL_STACK_PORT") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| StackError::Config(format!("LOCAL_STACK_PORT={v:?} is not a port"))),
        Err(_) => Ok(DEFAULT_PORT),
    }
}

/// `moto.pid` / `moto.log` for the default port, `moto-<port>.*` otherwise.
fn state_file(port: u16, ext: &str) -> Result<PathBuf, StackError> {
    let name = if port == DEFAULT_PORT {
        format!("moto.{ext}")
    } else {
        format!("moto-{port}.{ext}")
    };
    Ok(local_dir()?.join(name))
}

/// What answers on the port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    Nothing,
    /// Our wrapper, with its fingerprint and pid.
    Ours {
        fingerprint: String,
        pid: u32,
    },
    /// Something else (e.g. stock moto_server) answered.
    Other(String),
}

/// A one-shot HTTP/1.0 GET of the health path (no HTTP client needed here, and
/// this runs on blocking threads).
fn probe(port: u16) -> Probe {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return Probe::Nothing;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {HEALTH_PATH} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return Probe::Other("connection refused the request".into());
    }
    let mut response = String::new();
    if let Err(e) = stream.read_to_string(&mut response) {
        return Probe::Other(format!("no readable answer: {e}"));
    }
    // Tolerate chunked framing: the JSON object is all that matters.
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    let body = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) if a < b => &body[a..=b],
        _ => body,
    };
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    match parsed {
        Some(v) if v["emulator"] == EMULATOR_ID => Probe::Ours {
            fingerprint: v["fingerprint"].as_str().unwrap_or_default().to_string(),
            pid: v["pid"].as_u64().unwrap_or(0) as u32,
        },
        _ => Probe::Other(response.lines().next().unwrap_or("").to_string()),
    }
}

fn read_pid(port: u16) -> Result<Option<u32>, StackError> {
    let path = state_file(port, "pid")?;
    match fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StackError::io(format!("reading {}", path.display()), e)),
    }
}

fn alive(pid: u32) -> bool {
    // Signal 0 only checks that the process exists and can be signalled.
    // SAFETY: kill(2) has no memory-safety preconditions.
    pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

fn signal(pid: u32, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// Whether `pid` runs our server.py (guards against a recycled pid).
fn is_our_server(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("server.py"))
        .unwrap_or(false)
}

/// Returns the endpoint URL, starting the emulator if nothing answers.
pub(crate) fn ensure_running_blocking() -> Result<String, StackError> {
    if let Ok(endpoint) = std::env::var("LOCAL_STACK_ENDPOINT") {
        // An emulator managed elsewhere (e.g. stock moto_server for comparisons).
        return Ok(endpoint);
    }
    let port = port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let wanted = fingerprint()?;
    // Fast path without any lock: the common case in a test run.
    if matches!(probe(port), Probe::Ours { ref fingerprint, .. } if *fingerprint == wanted) {
        return Ok(endpoint);
    }
    ensure_installed()?;
    let _lock = FileLock::acquire(&format!("start-{port}"))?;
    match probe(port) {
        Probe::Ours { fingerprint, .. } if fingerprint == wanted => return Ok(endpoint),
        Probe::Ours { fingerprint, pid } => {
            // An older version of server.py or of the pins: replace it, but
            // only if we started it (it is in our pidfile).
            if read_pid(port)? == Some(pid) {
                eprintln!("local-stack: restarting the emulator (pid {pid}): its code changed ({fingerprint} -> {wanted})");
                stop_pid(port, pid)?;
            } else {
                return Err(StackError::PortTaken {
                    port,
                    detail: format!("an emulator of another version (pid {pid}) that this checkout did not start; stop it or set LOCAL_STACK_PORT"),
                });
            }
        }
        Probe::Other(detail) => return Err(StackError::PortTaken { port, detail }),
        Probe::Nothing => {
            // A process from our pidfile that does not answer is hung or
            // still dying: clear it out before starting a new one.
            if let Some(pid) = read_pid(port)? {
                if alive(pid) && is_our_server(pid) {
                    stop_pid(port, pid)?;
                }
            }
        }
    }
    start(port, &wanted)?;
    Ok(endpoint)
}

fn start(port: u16, fingerprint: &str) -> Result<(), StackError> {
    let log_path = state_file(port, "log")?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| StackError::io(format!("opening {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| StackError::io("duplicating the log handle", e))?;
    let mut child = Command::new(python_tool("python"))
        .arg(server_path())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--fingerprint", fingerprint])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Own process group: Ctrl-C on a `cargo test` does not reach it, and it
        // outlives the process that started it (later test processes reuse it).
        .process_group(0)
        .spawn()
        .map_err(|e| {
            StackError::Start(format!(
                "cannot run {}: {e}",
                python_tool("python").display()
            ))
        })?;
    let pid = child.id();
    let pid_path = state_file(port, "pid")?;
    fs::write(&pid_path, format!("{pid}\n"))
        .map_err(|e| StackError::io(format!("writing {}", pid_path.display()), e))?;

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match probe(port) {
            Probe::Ours { pid: p, .. } if p == pid => return Ok(()),
            Probe::Other(detail) => return Err(StackError::PortTaken { port, detail }),
            _ => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            let _ = fs::remove_file(&pid_path);
            return Err(StackError::Start(format!(
                "the emulator exited with {status}; last lines of {}:\n{}",
                log_path.display(),
                tail(&log_path, 30)
            )));
        }
        if Instant::now() > deadline {
            stop_pid(port, pid)?;
            return Err(StackError::Start(format!(
                "no answer on port {port} after {}s; last lines of {}:\n{}",
                START_TIMEOUT.as_secs(),
                log_path.display(),
                tail(&log_path, 30)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, then SIGKILL after a grace period; removes the pidfile.
fn stop_pid(port: u16, pid: u32) -> Result<(), StackError> {
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while alive(pid) && Instant::now() < deadline {
        reap(pid);
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        signal(pid, libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(100));
        reap(pid);
    }
    let pid_path = state_file(port, "pid")?;
    match fs::remove_file(&pid_path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StackError::io(
            format!("removing {}", pid_path.display()),
            e,
        )),
    }
}

/// Collects the exit status if the process is our child (else a no-op), so a
/// stopped child of this very process does not linger as a zombie that
/// `kill(pid, 0)` still reports alive.
fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a pid; writes only to `status`.
    unsafe {
        libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG);
    }
}

/// Stops the emulator this checkout started (per the pidfile). Harmless when
/// nothing runs. Returns the pid it stopped.
pub fn stop() -> Result<Option<u32>, StackError> {
    let port = port()?;
    let _lock = FileLock::acquire(&format!("start-{port}"))?;
    let Some(pid) = read_pid(port)? else {
        return Ok(None);
    };
    if alive(pid) && is_our_server(pid) {
        stop_pid(port, pid)?;
        Ok(Some(pid))
    } else {
        // Stale pidfile (machine rebooted, process killed): just forget it.
        let _ = fs::remove_file(state_file(port, "pid")?);
        Ok(None)
    }
}

/// What `local-stack status` reports.
#[derive(Debug, Clone)]
pub struct EmulatorStatus {
    pub endpoint: String,
    pub running: bool,
    /// Running and of the current code (server.py + requirements.txt).
    pub current: bool,
    pub pid: Option<u32>,
    pub detail: String,
    pub log: PathBuf,
}

pub fn status() -> Result<EmulatorStatus, StackError> {
    let port = port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let wanted = fingerprint()?;
    let log = state_file(port, "log")?;
    let pidfile = read_pid(port)?;
    Ok(match probe(port) {
        Probe::Nothing => EmulatorStatus {
            endpoint,
            running: false,
            current: false,
            pid: None,
            detail: match pidfile {
                Some(pid) if alive(pid) => {
                    format!("pid {pid} from the pidfile is alive but does not answer")
                }
                _ => "nothing answers".into(),
            },
            log,
        },
        Probe::Ours { fingerprint, pid } => {
            EmulatorStatus {
                endpoint,
                running: true,
                current: fingerprint == wanted,
                pid: Some(pid),
                detail: if fingerprint == wanted {
                    format!(
                        "emulator {fingerprint} (current), started by this checkout: {}",
                        pidfile == Some(pid)
                    )
                } else {
                    format!("emulator {fingerprint} is stale (current code is {wanted}); `up` restarts it")
                },
                log,
            }
        }
        Probe::Other(detail) => EmulatorStatus {
            endpoint,
            running: false,
            current: false,
            pid: None,
            detail: format!("something else answers: {detail}"),
            log,
        },
    })
}
