use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use domain::order::ExchangeReport;

use crate::fill_queue::{FillQueue, QueueError};

/// Reports in a list, for tests and the simulation (which decides the order
/// and repetition of deliveries itself). Clones share the list.
#[derive(Debug, Clone, Default)]
pub struct MemoryFillQueue(Arc<Mutex<VecDeque<ExchangeReport>>>);

impl MemoryFillQueue {
    pub fn drain(&self) -> Vec<ExchangeReport> {
        self.0
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.lock().map(|q| q.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FillQueue for MemoryFillQueue {
    async fn send(&self, report: &ExchangeReport) -> Result<(), QueueError> {
        let mut queue = self
            .0
            .lock()
            .map_err(|_| QueueError::Unavailable("queue lock poisoned".into()))?;
        queue.push_back(report.clone());
        Ok(())
    }
}
