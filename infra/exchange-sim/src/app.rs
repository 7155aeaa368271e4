//! Wiring: builds the engine, fault injector, webhook sender and router from
//! [`Settings`], and runs them on a listener. Used by `main`, the HTTP tests
//! and the load generator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Engine, EngineConfig};
use crate::faults::{FaultConfig, FaultInjector};
use crate::http::{router, AppState, ResponseLatency};
use crate::time::{Clock, OffsetClock};
use crate::webhooks::{self, WebhookConfig};

/// How often the background ticker advances the engine (fills fall due and
/// webhooks go out even when nobody calls the API).
pub const DEFAULT_TICK_MS: u64 = 10;

#[derive(Debug, Clone)]
pub struct Settings {
    pub engine: EngineConfig,
    pub faults: FaultConfig,
    pub webhook: Option<WebhookConfig>,
    pub tick_ms: u64,
    /// The venue's clock = the given clock + this (negative: behind). Used
    /// for deadlines, trade dates, timestamps, `Date` headers, `/v1/time`
    /// and webhook signature timestamps.
    pub clock_offset_ms: i64,
    /// How long each `/v1/*` request takes at the venue.
    pub latency: ResponseLatency,
}

impl Settings {
    pub fn new(engine: EngineConfig) -> Settings {
        Settings {
            engine,
            faults: FaultConfig::healthy(),
            webhook: None,
            tick_ms: DEFAULT_TICK_MS,
            clock_offset_ms: 0,
            latency: ResponseLatency::default(),
        }
    }
}

/// A server running in the background; dropping it stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        match self.server.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Builds everything and serves on `listener` (needs a Tokio runtime).
/// `clock` is the platform's clock; the venue runs `clock_offset_ms` off it.
pub async fn start(
    settings: Settings,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Running> {
    settings.latency.validate().map_err(anyhow::Error::msg)?;
    let clock: Arc<dyn Clock> = Arc::new(OffsetClock::new(clock, settings.clock_offset_ms));
    let engine = Engine::new(settings.engine.clone())?;
    let faults = Arc::new(Mutex::new(FaultInjector::new(
        settings.faults.clone(),
        settings.engine.seed,
        clock.now_ms(),
    )?));
    let webhooks = match settings.webhook.clone() {
        Some(cfg) => Some(webhooks::spawn(cfg, faults.clone(), clock.clone())?),
        None => None,
    };
    let state = AppState::with_latency(engine, faults, clock, webhooks, settings.latency);
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);

    let ticker_state = state.clone();
    let mut ticker_stop = stopped.clone();
    let tick = Duration::from_millis(settings.tick_ms.max(1));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => drop(ticker_state.engine()),
                _ = ticker_stop.changed() => return,
            }
        }
    });

    let mut server_stop = stopped;
    let shutdown = async move {
        let _ = server_stop.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(crate::server::serve(
        listener,
        router(state.clone()),
        shutdown,
    ));
    Ok(Running {
        addr,
        state,
        stop,
        server: Some(server),
    })
}
