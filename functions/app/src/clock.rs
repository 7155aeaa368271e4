//! Time is a port: production reads the system clock, tests and the
//! simulation move a manual one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Waits `ms` (a backoff between retries). A manual clock moves itself
    /// forward instead, so the simulation stays deterministic.
    fn pause(&self, ms: u64) -> impl std::future::Future<Output = ()> + Send;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 is a broken host; report the epoch rather than panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    async fn pause(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn at(now_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now_ms)))
    }

    pub fn advance_ms(&self, delta_ms: u64) {
        self.0.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    async fn pause(&self, ms: u64) {
        self.advance_ms(ms);
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }

    async fn pause(&self, ms: u64) {
        (**self).pause(ms).await
    }
}

/// The system clock plus an offset that only grows: real time passes, and a
/// test can also jump ahead (past a deadline, a backoff). Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct OffsetClock(Arc<AtomicU64>);

impl OffsetClock {
    pub fn advance_ms(&self, delta_ms: u64) {
        self.0.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        SystemClock.now_ms() + self.0.load(Ordering::SeqCst)
    }

    async fn pause(&self, ms: u64) {
        SystemClock.pause(ms).await
    }
}
