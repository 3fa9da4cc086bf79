//! A stop signal that can be asked again after it fired: the future the
//! caller gives, polled at most until it completes.

use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;

/// The caller's stop signal.
pub(crate) struct Stop<F> {
    fut: Pin<Box<F>>,
    done: bool,
}

impl<F: Future<Output = ()>> Stop<F> {
    pub(crate) fn new(fut: F) -> Self {
        Stop {
            fut: Box::pin(fut),
            done: false,
        }
    }

    /// Whether the signal has fired, without waiting.
    pub(crate) fn fired(&mut self) -> bool {
        if !self.done && self.fut.as_mut().now_or_never().is_some() {
            self.done = true;
        }
        self.done
    }

    /// Waits for the signal (at once if it fired). Dropping the wait
    /// before it completes loses nothing.
    pub(crate) async fn wait(&mut self) {
        if !self.done {
            self.fut.as_mut().await;
            self.done = true;
        }
    }
}
