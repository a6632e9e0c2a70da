//! The ingest crate's integration tests, in one binary.

mod edge_values;
mod errors;
mod fixtures;
mod fuzz;
mod registry;
mod roundtrip;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a future that completes without waiting on anything (decoding with
/// schemas from a recording), without the overhead of a runtime.
pub fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
