//! Ctrl-C while the shell runs a statement.
//!
//! The terminal is in cooked mode while a statement runs, so Ctrl-C is a
//! SIGINT. A task of its own counts them, so the shell hears every one
//! whatever the statement's task is busy with; the statement is told
//! through a [`CancelFlag`] that also stops its printing.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

/// SIGINTs received so far, and a way to wait for the next.
#[derive(Clone)]
pub struct Interrupts {
    count: Arc<AtomicU64>,
    notify: Arc<Notify>,
}

impl Interrupts {
    /// Takes over SIGINT for the rest of the process.
    pub fn listen() -> std::io::Result<Self> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let this = Self {
            count: Arc::default(),
            notify: Arc::default(),
        };
        let (count, notify) = (this.count.clone(), this.notify.clone());
        tokio::spawn(async move {
            while sigint.recv().await.is_some() {
                count.fetch_add(1, Ordering::SeqCst);
                notify.notify_waiters();
            }
        });
        Ok(this)
    }

    /// How many have come so far.
    pub fn seen(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Resolves once more than `seen` have come.
    pub async fn after(&self, seen: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // registered before the count is read, so none slips between
            notified.as_mut().enable();
            if self.seen() > seen {
                return;
            }
            notified.await;
        }
    }
}

/// Set when the statement is cancelled.
#[derive(Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A writer that fails once its statement is cancelled: printing a long
/// result has no await point to be aborted at, so it checks at each write.
pub struct CancellableWriter<W> {
    inner: W,
    cancel: CancelFlag,
}

impl<W: Write> CancellableWriter<W> {
    pub fn new(inner: W, cancel: CancelFlag) -> Self {
        Self { inner, cancel }
    }

    fn check(&self) -> std::io::Result<()> {
        if self.cancel.is_cancelled() {
            // not ErrorKind::Interrupted: write_all would try again
            return Err(std::io::Error::other("cancelled"));
        }
        Ok(())
    }
}

impl<W: Write> Write for CancellableWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.check()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_writer_writes_nothing_more() {
        let cancel = CancelFlag::default();
        let mut w = CancellableWriter::new(Vec::new(), cancel.clone());
        w.write_all(b"row 1\n").unwrap();
        cancel.cancel();
        let err = w.write_all(b"row 2\n").unwrap_err();
        assert_eq!(err.to_string(), "cancelled");
        assert_eq!(w.inner, b"row 1\n");
    }
}
