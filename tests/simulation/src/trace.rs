//! What one run did, line by line. Kept only when asked for (a replay, or
//! a failing seed run again to show it): formatting every line of ten
//! thousand seeds would cost more than running them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Lines kept; older ones are dropped (a failure is explained by its end).
pub const TRACE_LINES_KEPT: usize = 4_000;

#[derive(Default)]
struct Lines {
    kept: VecDeque<String>,
    dropped: u64,
    /// `SIM_TRACE_LIVE=1`: every line goes to stderr as it happens too (a hang).
    live: bool,
}

/// Off, or the lines so far. Clones share the lines.
#[derive(Clone, Default)]
pub struct Trace(Option<Arc<Mutex<Lines>>>);

impl Trace {
    pub fn off() -> Self {
        Trace(None)
    }

    pub fn on() -> Self {
        let lines = Lines {
            live: std::env::var_os("SIM_TRACE_LIVE").is_some(),
            ..Lines::default()
        };
        Trace(Some(Arc::new(Mutex::new(lines))))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Adds a line; `line` is only called when the trace is on.
    pub fn line(&self, line: impl FnOnce() -> String) {
        let Some(lines) = &self.0 else {
            return;
        };
        let mut lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.kept.len() == TRACE_LINES_KEPT {
            lines.kept.pop_front();
            lines.dropped += 1;
        }
        let line = line();
        if lines.live {
            eprintln!("{line}");
        }
        lines.kept.push_back(line);
    }

    pub fn render(&self) -> String {
        let Some(lines) = &self.0 else {
            return "(trace off)\n".to_owned();
        };
        let lines = lines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        if lines.dropped > 0 {
            out.push_str(&format!("(first {} lines dropped)\n", lines.dropped));
        }
        for line in &lines.kept {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}
