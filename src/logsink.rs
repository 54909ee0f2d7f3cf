//! The log sink, a leaf module shared by `runtime` (which writes a unit's output) and
//! `supervisor` (which keeps and serves it).
//!
//! Unit output: a bounded in-memory ring per unit, live followers, and the daemon's
//! stderr with every line prefixed by the unit name.
//!
//! Nothing here may block the caller: the ring is bounded in bytes, followers get a
//! lossy broadcast channel, and stderr is written by one printer thread fed through a
//! bounded queue; when stderr is slower than the units' output, lines are dropped and
//! counted (the count is printed once stderr catches up) instead of stalling readers.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// Longest line kept; longer lines are cut and marked.
pub const MAX_LINE: usize = 16 * 1024;
/// Bytes of output kept per unit.
pub const RING_BYTES: usize = 512 * 1024;
/// Lines waiting for stderr before new ones are dropped.
const STDERR_QUEUE: usize = 8192;
/// Bytes waiting for stderr before new lines are dropped.
const STDERR_QUEUE_BYTES: usize = 2 * 1024 * 1024;

struct Ring {
    lines: VecDeque<Arc<str>>,
    bytes: usize,
}

/// Where one unit's output goes; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    unit: Arc<str>,
    ring: Arc<Mutex<Ring>>,
    live: broadcast::Sender<Arc<str>>,
    echo: bool,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogSink({})", self.unit)
    }
}

impl LogSink {
    /// A fresh sink for `unit`.
    pub fn new(unit: &str) -> Self {
        let (live, _) = broadcast::channel(256);
        LogSink {
            unit: unit.into(),
            ring: Arc::new(Mutex::new(Ring {
                lines: VecDeque::new(),
                bytes: 0,
            })),
            live,
            echo: true,
        }
    }

    /// A sink that keeps lines but does not copy them to stderr (probe output).
    pub fn quiet(unit: &str) -> Self {
        LogSink {
            echo: false,
            ..Self::new(unit)
        }
    }

    /// The unit this sink belongs to.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// Records raw bytes of one line (no newline): lossy UTF-8, cut at `MAX_LINE`.
    pub fn line_bytes(&self, bytes: &[u8], cut: usize) {
        let mut s = String::from_utf8_lossy(bytes).into_owned();
        if cut > 0 {
            s.push_str(&format!(" …[{cut} more bytes cut]"));
        }
        self.line(s);
    }

    /// Records one line of text.
    pub fn line(&self, mut s: String) {
        if s.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let cut = s.len() - end;
            s.truncate(end);
            s.push_str(&format!(" …[{cut} more bytes cut]"));
        }
        let line: Arc<str> = s.into();
        {
            let mut r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            r.bytes += line.len();
            r.lines.push_back(line.clone());
            while r.bytes > RING_BYTES {
                match r.lines.pop_front() {
                    Some(old) => r.bytes -= old.len(),
                    None => break,
                }
            }
        }
        if self.echo {
            to_stderr(&self.unit, &line);
        }
        let _ = self.live.send(line);
    }

    /// The last `n` lines kept.
    pub fn tail(&self, n: usize) -> Vec<Arc<str>> {
        let r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let skip = r.lines.len().saturating_sub(n);
        r.lines.iter().skip(skip).cloned().collect()
    }

    /// Lines logged from now on (a slow follower misses lines rather than blocking).
    pub fn follow(&self) -> broadcast::Receiver<Arc<str>> {
        self.live.subscribe()
    }

    /// A plain callback writing to this sink (for `TaskContext::log`).
    pub fn as_fn(&self) -> Arc<dyn Fn(String) + Send + Sync> {
        let me = self.clone();
        Arc::new(move |l| me.line(l))
    }
}

static DROPPED: AtomicU64 = AtomicU64::new(0);
static QUEUED: AtomicUsize = AtomicUsize::new(0);
static PRINTER: OnceLock<SyncSender<Out>> = OnceLock::new();

/// One item for the stderr printer.
enum Out {
    Unit(Arc<str>, Arc<str>),
    /// Pre-formatted daemon output (tracing).
    Raw(Vec<u8>),
}

impl Out {
    fn len(&self) -> usize {
        match self {
            Out::Unit(u, l) => u.len() + l.len() + 4,
            Out::Raw(b) => b.len(),
        }
    }
}

fn printer() -> &'static SyncSender<Out> {
    PRINTER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Out>(STDERR_QUEUE);
        std::thread::Builder::new()
            .name("stderr".into())
            .spawn(move || {
                let stderr = std::io::stderr();
                let mut last_report = std::time::Instant::now();
                while let Ok(item) = rx.recv() {
                    let mut e = stderr.lock();
                    let due = last_report.elapsed() >= std::time::Duration::from_secs(1);
                    let dropped = if due {
                        DROPPED.swap(0, Ordering::Relaxed)
                    } else {
                        0
                    };
                    if dropped > 0 {
                        last_report = std::time::Instant::now();
                        let _ = writeln!(
                            e,
                            "prometheus-stack | {dropped} output lines dropped (stderr too slow)"
                        );
                    }
                    let _ = match &item {
                        Out::Unit(unit, line) => writeln!(e, "{unit} | {line}"),
                        Out::Raw(b) => e.write_all(b),
                    };
                    QUEUED.fetch_sub(item.len(), Ordering::Relaxed);
                }
            })
            .expect("spawn the stderr thread");
        tx
    })
}

fn enqueue(item: Out) {
    let len = item.len();
    if QUEUED.load(Ordering::Relaxed) + len > STDERR_QUEUE_BYTES {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    QUEUED.fetch_add(len, Ordering::Relaxed);
    match printer().try_send(item) {
        Ok(()) => {}
        Err(TrySendError::Full(i)) | Err(TrySendError::Disconnected(i)) => {
            QUEUED.fetch_sub(i.len(), Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn to_stderr(unit: &Arc<str>, line: &Arc<str>) {
    enqueue(Out::Unit(unit.clone(), line.clone()));
}

/// Waits (up to `max`) until everything queued for stderr is written (before exiting).
pub fn flush_stderr(max: std::time::Duration) {
    let end = std::time::Instant::now() + max;
    while QUEUED.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A `tracing_subscriber` writer for the daemon's own messages: they share the unit
/// output's queue, so a slow stderr (a stalled journald) never blocks an async task.
#[derive(Clone, Copy, Default)]
pub struct StderrQueue;

/// One formatted event, handed to the printer when dropped.
pub struct QueuedEvent(Vec<u8>);

impl Write for QueuedEvent {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedEvent {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            enqueue(Out::Raw(std::mem::take(&mut self.0)));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrQueue {
    type Writer = QueuedEvent;
    fn make_writer(&'a self) -> QueuedEvent {
        QueuedEvent(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_lines_cut() {
        let s = LogSink::quiet("t");
        s.line("x".repeat(MAX_LINE * 3));
        assert!(s.tail(1)[0].len() < MAX_LINE + 64);
        for i in 0..100_000 {
            s.line(format!("line {i}"));
        }
        let r = s.ring.lock().unwrap();
        assert!(r.bytes <= RING_BYTES);
        assert_eq!(&*r.lines.back().unwrap().clone(), "line 99999");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let s = LogSink::quiet("t");
        s.line_bytes(b"ok \xff\xfe end", 0);
        assert_eq!(&*s.tail(1)[0], "ok \u{fffd}\u{fffd} end");
    }
}
