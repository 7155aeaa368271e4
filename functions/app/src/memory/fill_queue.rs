use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use domain::order::ExchangeReport;

use crate::fill_queue::{FillQueue, QueueError};

#[derive(Debug, Default)]
struct Queues {
    reports: VecDeque<(ExchangeReport, String)>,
    set_aside: Vec<(String, String)>,
    set_aside_ids: std::collections::HashSet<String>,
}

/// Reports in a list, for tests and the simulation (which decides the order
/// and repetition of deliveries itself). Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct MemoryFillQueue(Arc<Mutex<Queues>>);

impl MemoryFillQueue {
    fn lock(&self) -> Result<MutexGuard<'_, Queues>, QueueError> {
        self.0
            .lock()
            .map_err(|_| QueueError::Unavailable("queue lock poisoned".into()))
    }

    pub fn drain(&self) -> Vec<ExchangeReport> {
        self.lock()
            .map(|mut q| q.reports.drain(..).map(|(r, _)| r).collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.lock().map(|q| q.reports.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(payload, reason)` of every message set aside.
    pub fn set_aside_messages(&self) -> Vec<(String, String)> {
        self.lock().map(|q| q.set_aside.clone()).unwrap_or_default()
    }
}

impl FillQueue for MemoryFillQueue {
    async fn send(&self, report: &ExchangeReport, delivery_id: &str) -> Result<(), QueueError> {
        self.lock()?
            .reports
            .push_back((report.clone(), delivery_id.to_owned()));
        Ok(())
    }

    async fn set_aside(
        &self,
        payload: &str,
        reason: &str,
        delivery_id: &str,
    ) -> Result<(), QueueError> {
        let mut queues = self.lock()?;
        if queues.set_aside_ids.insert(delivery_id.to_owned()) {
            queues
                .set_aside
                .push((payload.to_owned(), reason.to_owned()));
        }
        Ok(())
    }
}
