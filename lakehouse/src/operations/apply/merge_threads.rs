//! Where merges inside ingest do their CPU work: a runtime of their own,
//! with a fixed number of threads (one by default) at a lower scheduling
//! priority than the rest of the process.
//!
//! A merge decodes and re-encodes Parquet. Run on ingest's own runtime it
//! took worker threads from the consumer and from the commits, and on a
//! two-core machine a round of 30 partitions could hold both cores for a
//! second while the next commit waited to be polled. On its own runtime a
//! merge's reading and planning use [`set_merge_threads`] threads, and
//! because every thread of that runtime (its workers and the blocking
//! threads that encode several files at once) runs at nice 10, the kernel
//! gives a core to a commit or the consumer first whenever both want it:
//! commits go first, and merges use what is left. Memory is bounded by `max_rows_per_round`
//! ([`crate::config::MergePolicy`]): a round holds at most one output
//! file's rows per partition it is rewriting.
//!
//! The runtime lives as long as the process: connections a merge opens to
//! the object store are pooled with the table's, and their tasks run here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static THREADS: AtomicUsize = AtomicUsize::new(1);
static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

/// The niceness of merge threads: below anything else in the process,
/// within reach of an unprivileged user.
const NICE: i32 = 10;

/// Sets how many threads merges run on (at least one); takes effect only
/// before the first merge of the process.
pub fn set_merge_threads(threads: usize) {
    THREADS.store(threads.max(1), Ordering::Relaxed);
}

/// The merge runtime's handle, started at the first call; `None` when it
/// could not be started (merges then run on the caller's runtime).
pub(crate) fn handle() -> Option<tokio::runtime::Handle> {
    RUNTIME
        .get_or_init(|| {
            let threads = THREADS.load(Ordering::Relaxed);
            let built = Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("floe-merge")
                .on_thread_start(lower_priority)
                .enable_all()
                .build();
            match built {
                Ok(runtime) => Some(runtime),
                Err(e) => {
                    tracing::warn!("cannot start the merge threads; merges run beside the commits instead: {e}");
                    None
                }
            }
        })
        .as_ref()
        .map(|r| r.handle().clone())
}

/// Lowers the calling thread's scheduling priority (Linux sets it per
/// thread); elsewhere, or when refused, the thread keeps the process's.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid, getpriority and setpriority only read their
        // arguments and change this thread's own niceness
        let refused = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, now.max(NICE)) != 0
        };
        if refused {
            tracing::debug!("merge thread keeps the process's priority: setpriority refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_run_on_their_own_threads_at_a_lower_priority() {
        let handle = handle().expect("the merge runtime starts");
        let (name, nice) = std::thread::spawn(move || {
            handle.block_on(async {
                tokio::spawn(async {
                    let name = std::thread::current().name().map(str::to_string);
                    // SAFETY: reads this thread's niceness
                    let nice = unsafe {
                        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                        libc::getpriority(libc::PRIO_PROCESS, tid)
                    };
                    (name, nice)
                })
                .await
                .expect("the task runs")
            })
        })
        .join()
        .expect("the thread ends");
        assert_eq!(name.as_deref(), Some("floe-merge"));
        // SAFETY: reads the process's niceness
        let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, base.max(NICE));
    }
}
