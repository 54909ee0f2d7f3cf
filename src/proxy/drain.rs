//! Graceful shutdown (the mini-redis pattern with `tokio_util`): one token stops the
//! accept loops (new connections are refused) and asks open connections to finish their
//! requests; a tracker counts every loop, connection and tunnel so shutdown knows when
//! the drain is over; a second token cuts whatever outlives the drain bound.

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The proxy's shutdown state, cloned into every task it spawns.
#[derive(Clone, Default)]
pub(crate) struct Drain {
    /// Cancelled when shutdown starts.
    pub stop: CancellationToken,
    /// Cancelled when the drain bound has passed: what is still open is dropped.
    force: CancellationToken,
    tracker: TaskTracker,
}

impl Drain {
    /// Runs `fut` on its own task, counted by the drain and dropped when it is forced.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let force = self.force.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = force.cancelled() => {}
            }
        });
    }

    /// Resolves once shutdown has started.
    pub(crate) async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Stops accepting, waits up to `grace` for every tracked task, then drops the rest.
    /// True when everything finished within `grace`.
    pub(crate) async fn run(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        let drained = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !drained {
            self.force.cancel();
            // Every task selects on `force`: this returns at their next poll.
            self.tracker.wait().await;
        }
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_work_then_forces_what_outlives_the_bound() {
        let d = Drain::default();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        d.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(d.run(Duration::from_secs(5)).await);
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));

        let d = Drain::default();
        d.spawn(std::future::pending());
        let start = std::time::Instant::now();
        assert!(!d.run(Duration::from_millis(200)).await);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
