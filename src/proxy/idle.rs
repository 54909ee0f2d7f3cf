//! Idle connections: hyper closes neither an HTTP/2 connection without streams (its
//! PINGs only detect dead peers) nor, by itself, a keep-alive HTTP/1.1 connection
//! between requests (its header timer does). Each connection counts its open requests
//! (a request is open until its response body is dropped); once none has been open for
//! the idle timeout the connection is shut down gracefully (HTTP/2: GOAWAY).

use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Open requests of one connection and when the last one ended.
#[derive(Debug)]
pub(crate) struct Idle {
    state: Mutex<(usize, Instant)>,
    changed: Notify,
}

/// One open request; dropping it (with the response body) ends it.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Idle>);

impl Idle {
    /// A connection that has just opened: idle since now.
    pub fn new() -> Arc<Self> {
        Arc::new(Idle {
            state: Mutex::new((0, Instant::now())),
            changed: Notify::new(),
        })
    }

    /// Marks a request open until the returned guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.update(|s| s.0 += 1);
        Busy(self.clone())
    }

    fn update(&self, f: impl FnOnce(&mut (usize, Instant))) {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_waiters();
    }

    /// Resolves once no request has been open for `timeout`.
    pub async fn expired(&self, timeout: Duration) {
        loop {
            // Registered before the state is read, so no change is missed.
            let changed = self.changed.notified();
            let (open, since) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
            if open > 0 {
                changed.await;
                continue;
            }
            let deadline = since + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = changed => {}
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|s| {
            s.0 -= 1;
            s.1 = Instant::now();
        });
    }
}

/// A response body that keeps its request open until it is dropped.
pub(crate) struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Tracked<B> {
    /// Wraps `inner`, holding `busy` as long as it lives.
    pub fn new(inner: B, busy: Busy) -> Self {
        Tracked { inner, _busy: busy }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_only_after_the_last_request_ended_for_the_timeout() {
        let idle = Idle::new();
        let t = Duration::from_secs(10);
        let busy = idle.busy();
        let waiter = tokio::spawn({
            let idle = idle.clone();
            async move {
                idle.expired(t).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished(), "expired while a request was open");
        let ended = Instant::now();
        drop(busy);
        let at = waiter.await.unwrap();
        assert!(at >= ended + t, "{:?}", at - ended);
        assert!(at < ended + t + Duration::from_secs(1));
    }
}
