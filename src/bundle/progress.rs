//! Progress for long copies: a redrawn bar on a terminal, plain start/end lines otherwise
//! (logs, CI, pipes).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports one long step at a time.
pub struct Progress {
    tty: bool,
    label: String,
    total: u64,
    started: Instant,
    last_draw: Option<Instant>,
}

/// Human size (MiB with one decimal).
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines on stdout otherwise.
    pub fn start(label: impl Into<String>, total: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let p = Progress {
            tty,
            label: label.into(),
            total,
            started: Instant::now(),
            last_draw: None,
        };
        if !tty {
            println!("{} ({})", p.label, mib(total));
        }
        p
    }

    /// `done` bytes of `total` are through.
    pub fn update(&mut self, done: u64) {
        if !self.tty {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now - t < Duration::from_millis(100))
            && done < self.total
        {
            return;
        }
        self.last_draw = Some(now);
        let frac = if self.total == 0 {
            1.0
        } else {
            (done as f64 / self.total as f64).min(1.0)
        };
        let width = 30;
        let filled = (frac * width as f64).round() as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{} [{}{}] {:>3}% {}/{}",
            self.label,
            "#".repeat(filled),
            " ".repeat(width - filled),
            (frac * 100.0).round() as u32,
            mib(done),
            mib(self.total)
        );
        let _ = err.flush();
    }

    /// Ends the step with a result line.
    pub fn finish(self, result: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "\r\x1b[2K{result} ({}, {secs:.1} s)", mib(self.total));
        } else {
            println!("{result} ({}, {secs:.1} s)", mib(self.total));
        }
    }
}
