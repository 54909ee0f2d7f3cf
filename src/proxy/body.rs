//! Bodies in both directions, streamed frame by frame (never buffered):
//! requests are cut at the route's size limit, responses time out when the upstream
//! stalls, count their bytes and write the access log line when they end.

use super::access_log::AccessRecord;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Boxed error for bodies.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body sent upstream: ends with an error once more than `limit` bytes came.
pub(crate) struct RequestBody {
    inner: Incoming,
    remaining: u64,
    /// Set when the limit was hit, so the handler answers 413 rather than 502.
    tripped: Arc<AtomicBool>,
}

/// The client sent more than the route allows.
#[derive(Debug, thiserror::Error)]
#[error("request body over the size limit")]
pub(crate) struct TooLarge;

impl RequestBody {
    /// Wraps `inner`; `tripped` turns true if the limit is exceeded.
    pub fn new(inner: Incoming, limit: u64, tripped: Arc<AtomicBool>) -> Self {
        RequestBody {
            inner,
            remaining: limit,
            tripped,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    let n = d.len() as u64;
                    if n > self.remaining {
                        self.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                    self.remaining -= n;
                }
                Some(Ok(f))
            }
            Some(Err(e)) => Some(Err(Box::new(e))),
            None => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum Kind {
    Upstream {
        body: Incoming,
        idle: Duration,
        timer: Option<Pin<Box<Sleep>>>,
        /// Whether `timer` counts from the last frame (reset lazily on Pending).
        armed: bool,
    },
    Page(Option<Bytes>),
}

/// What the proxy sends back: an upstream body (streamed) or one of its own pages.
pub(crate) struct ResponseBody {
    kind: Kind,
    bytes: u64,
    log: Option<Box<AccessRecord>>,
}

impl ResponseBody {
    /// A page of our own.
    pub(crate) fn page(b: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Page(Some(b)),
            bytes: 0,
            log: None,
        }
    }

    /// An upstream body that fails after `idle` without a frame.
    pub(crate) fn upstream(body: Incoming, idle: Duration) -> Self {
        ResponseBody {
            kind: Kind::Upstream {
                body,
                idle,
                timer: None,
                armed: false,
            },
            bytes: 0,
            log: None,
        }
    }

    /// Writes `rec` (with the byte count) when the body is done or dropped.
    pub(crate) fn set_log(&mut self, rec: AccessRecord) {
        self.log = Some(Box::new(rec));
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(rec) = self.log.take() {
            rec.finish(self.bytes);
        }
    }
}

/// The upstream sent nothing for longer than the read timeout.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing within the read timeout")]
pub(crate) struct IdleTimeout;

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Page(b) => Poll::Ready(b.take().map(|b| {
                this.bytes += b.len() as u64;
                Ok(Frame::data(b))
            })),
            Kind::Upstream {
                body,
                idle,
                timer,
                armed,
            } => match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    if let Some(d) = f.data_ref() {
                        this.bytes += d.len() as u64;
                    }
                    *armed = false;
                    Poll::Ready(Some(Ok(f)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => {
                    if !*armed {
                        let deadline = Instant::now() + *idle;
                        match timer {
                            Some(t) => t.as_mut().reset(deadline),
                            None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                        }
                        *armed = true;
                    }
                    let fired = timer
                        .as_mut()
                        .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                    if fired {
                        return Poll::Ready(Some(Err(Box::new(IdleTimeout))));
                    }
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Page(b) => b.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Page(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Page(None) => SizeHint::with_exact(0),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}
