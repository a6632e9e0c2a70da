//! Progress of long work (a job's query, a batch load): rows, files and
//! elapsed time, redrawn on one line when stderr is a terminal, logged
//! every few seconds otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports the progress of one piece of work.
pub struct Progress {
    what: String,
    started: Instant,
    last: Instant,
    terminal: bool,
    rows: u64,
    files: u64,
}

impl Progress {
    /// Starts reporting `what` (e.g. `job zone_performance_metrics`).
    pub fn start(what: impl Into<String>) -> Self {
        let now = Instant::now();
        Self {
            what: what.into(),
            started: now,
            last: now,
            terminal: std::io::stderr().is_terminal(),
            rows: 0,
            files: 0,
        }
    }

    pub fn add_rows(&mut self, rows: u64) {
        self.rows += rows;
        self.maybe_report();
    }

    pub fn add_file(&mut self) {
        self.files += 1;
        self.maybe_report();
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn maybe_report(&mut self) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.report(false);
        }
    }

    fn report(&self, done: bool) {
        let seconds = self.started.elapsed().as_secs_f64();
        if self.terminal {
            let end = if done { "\n" } else { "" };
            eprint!(
                "\r{}: {} rows, {} files, {seconds:.1} s{end}",
                self.what, self.rows, self.files
            );
            let _ = std::io::stderr().flush();
        } else {
            tracing::info!(
                work = %self.what,
                rows = self.rows,
                files = self.files,
                seconds,
                "progress"
            );
        }
    }

    /// Ends the line on a terminal (only if anything was drawn).
    pub fn finish(self) {
        if self.terminal && self.started.elapsed() >= Duration::from_millis(200) {
            self.report(true);
        }
    }
}
