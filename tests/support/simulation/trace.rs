//! A bounded trace of what happened, printed when a seed fails, and a digest
//! of all of it, to show that a seed replays exactly.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

/// Lines kept for printing; older ones are dropped (the digest keeps them all).
pub const TRACE_LINES_KEPT: usize = 600;

#[derive(Default)]
struct Lines {
    kept: VecDeque<String>,
    dropped: u64,
    digest: DefaultHasher,
}

#[derive(Clone, Default)]
pub struct Trace(Arc<Mutex<Lines>>);

impl Trace {
    pub fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        line.hash(&mut lines.digest);
        if lines.kept.len() == TRACE_LINES_KEPT {
            lines.kept.pop_front();
            lines.dropped += 1;
        }
        lines.kept.push_back(line);
    }

    /// A digest of every line ever pushed (stable within one build).
    pub fn digest(&self) -> u64 {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lines.digest.finish()
    }

    pub fn render(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = format!("(first {} lines dropped)\n", lines.dropped);
        for line in &lines.kept {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}
