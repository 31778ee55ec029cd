//! Run the engine's (async) operations to completion on the calling thread, for blocking
//! stores. A blocking [`Store`](crate::store::Store)'s futures are always ready, so the
//! first poll completes and nothing is allocated; for any other future this is a correct,
//! if busy, executor (it yields the thread between polls).

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Drive a future to completion on the calling thread. A blocking store's futures are always
/// ready, so the first poll completes; any other future is busy-polled, which is correct if
/// slow.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::yield_now(),
        }
    }
}
