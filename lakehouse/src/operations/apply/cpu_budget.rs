//! The CPU a merge round may take while commits go on beside it.
//!
//! A merge round's rewrite runs on the same tokio runtime as the writer's
//! commits (a runtime of its own at a lower priority was measured worse:
//! the store connections it opened then ran their I/O at that priority,
//! docs/benchmarks.md, issue 16). So the rewrite is paced instead: a
//! [`Budgeted`] future measures the CPU time of the thread that polls it,
//! poll by poll, and once it is ahead of its share of the wall time since
//! it started, it sleeps before its next poll. The cores are then free
//! for the commits that keep the table fresh.
//!
//! A merge the writer waits for (a partition past its bound) is made
//! [`urgent`](BudgetHandle::make_urgent) and runs unpaced: the bound is
//! the promise to readers, and the commit round is already waiting.
//!
//! What is measured is the CPU of the threads polling the rewrite: the
//! decoding, filtering and encoding of its files. Work the runtime does
//! on other tasks for it (the TLS and HTTP of pooled store connections)
//! is not counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// CPU a rewrite may spend ahead of its share before it is paced: a short
/// merge runs at full speed.
const BURST: Duration = Duration::from_millis(50);

/// Longest single pause, so that a rewrite made urgent meanwhile goes on
/// soon.
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// What the writer keeps of a budgeted rewrite: the CPU it has taken and
/// the switch that lifts its pacing.
#[derive(Debug, Clone, Default)]
pub(crate) struct BudgetHandle {
    urgent: Arc<AtomicBool>,
    cpu_nanos: Arc<AtomicU64>,
    paused_nanos: Arc<AtomicU64>,
}

impl BudgetHandle {
    /// From now on the rewrite runs unpaced.
    pub(crate) fn make_urgent(&self) {
        self.urgent.store(true, Ordering::Release);
    }

    /// CPU time the rewrite's polls have taken so far.
    pub(crate) fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Acquire))
    }

    /// Time the rewrite has spent paused for its budget.
    pub(crate) fn paused(&self) -> Duration {
        Duration::from_nanos(self.paused_nanos.load(Ordering::Acquire))
    }
}

/// `inner`, paced to take at most `share` of one core's time (over its
/// wall time, after a short burst). A share of 1 or more, or a platform
/// without per-thread CPU clocks, leaves it unpaced but still measured
/// where it can be.
///
/// Pacing is between polls, so a rewrite that spends its CPU in a few
/// long polls (a file encoded at once) is ahead of its share when it
/// finishes: its output is then held until it is within it, so a round
/// always takes the wall time its CPU allows and the next round starts
/// no sooner.
pub(crate) struct Budgeted<F: Future> {
    inner: Pin<Box<F>>,
    share: f64,
    started: Option<Instant>,
    cpu: Duration,
    pause: Option<(Pin<Box<tokio::time::Sleep>>, Instant)>,
    done: Option<F::Output>,
    handle: BudgetHandle,
}

impl<F: Future> Budgeted<F> {
    pub(crate) fn new(inner: F, share: f64, handle: BudgetHandle) -> Self {
        Self {
            inner: Box::pin(inner),
            share,
            started: None,
            cpu: Duration::ZERO,
            pause: None,
            done: None,
            handle,
        }
    }

    /// How long to pause now, if the rewrite is ahead of its share.
    fn ahead(&self, now: Instant) -> Option<Duration> {
        if self.share >= 1.0 || self.handle.urgent.load(Ordering::Acquire) {
            return None;
        }
        let started = self.started?;
        let over = self.cpu.checked_sub(BURST)?;
        // the wall time at which `over` is within the share
        let due = started + over.div_f64(self.share);
        let wait = due.checked_duration_since(now)?;
        (!wait.is_zero()).then(|| wait.min(LONGEST_PAUSE))
    }

    /// Polls the inner future once, adding the CPU the poll took.
    fn poll_inner(&mut self, cx: &mut Context<'_>) {
        self.started.get_or_insert_with(Instant::now);
        let before = thread_cpu();
        let polled = self.inner.as_mut().poll(cx);
        if let (Some(before), Some(after)) = (before, thread_cpu()) {
            let spent = after.saturating_sub(before);
            self.cpu += spent;
            self.handle
                .cpu_nanos
                .fetch_add(spent.as_nanos() as u64, Ordering::AcqRel);
        }
        if let Poll::Ready(out) = polled {
            self.done = Some(out);
        }
    }
}

impl<F: Future> Future for Budgeted<F>
where
    F::Output: Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let mut polled = false;
        // a pause is at most LONGEST_PAUSE, so a rewrite made urgent goes
        // on soon; after one, it may still be ahead of its share. The
        // inner future's own wake-ups during a pause are kept by what it
        // waits on, and seen when it is polled again.
        loop {
            if let Some((pause, since)) = &mut this.pause {
                let urgent = this.handle.urgent.load(Ordering::Acquire);
                if !urgent && pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let paused = since.elapsed().as_nanos() as u64;
                this.handle.paused_nanos.fetch_add(paused, Ordering::AcqRel);
                this.pause = None;
            }
            let now = Instant::now();
            if let Some(wait) = this.ahead(now) {
                this.pause = Some((Box::pin(tokio::time::sleep(wait)), now));
                continue;
            }
            if let Some(out) = this.done.take() {
                return Poll::Ready(out);
            }
            if polled {
                return Poll::Pending;
            }
            this.poll_inner(cx);
            polled = true;
        }
    }
}

/// The CPU time the calling thread has used, where the platform says.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration,
    // and CLOCK_THREAD_CPUTIME_ID is a clock every Linux kernel has
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that burns `per_poll` of CPU on every poll, `polls` times,
    /// yielding in between like a rewrite waiting for the store.
    async fn burn(polls: u32, per_poll: Duration) -> u32 {
        for _ in 0..polls {
            spin(per_poll);
            tokio::task::yield_now().await;
        }
        polls
    }

    /// Uses `cpu` of the calling thread's CPU time.
    fn spin(cpu: Duration) {
        let start = thread_cpu().unwrap_or_default();
        while thread_cpu().unwrap_or_default() - start < cpu {
            std::hint::black_box(0u64);
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_rewrite_ahead_of_its_share_is_paced_to_it() {
        // 20 polls of 10 ms: 200 ms of CPU; at a quarter of a core that
        // is at least (200 - 50) / 0.25 = 600 ms of wall time
        let handle = BudgetHandle::default();
        let started = Instant::now();
        let polls = Budgeted::new(burn(20, Duration::from_millis(10)), 0.25, handle.clone()).await;
        let took = started.elapsed();
        assert_eq!(polls, 20);
        assert!(took >= Duration::from_millis(600), "took {took:?}");
        assert!(
            handle.cpu() >= Duration::from_millis(200),
            "{:?}",
            handle.cpu()
        );
        assert!(
            handle.paused() >= Duration::from_millis(300),
            "{:?}",
            handle.paused()
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_rewrite_that_spends_its_cpu_at_once_is_held_to_its_share() {
        // one poll of 200 ms and done: it cannot be paused between polls,
        // so its output waits until (200 - 50) / 0.25 = 600 ms
        let handle = BudgetHandle::default();
        let started = Instant::now();
        let once = async {
            spin(Duration::from_millis(200));
            1
        };
        let polls = Budgeted::new(once, 0.25, handle.clone()).await;
        assert_eq!(polls, 1);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(600), "took {took:?}");
        assert!(!handle.paused().is_zero());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_whole_core_or_an_urgent_rewrite_is_not_paced() {
        for (share, urgent) in [(1.0, false), (0.1, true)] {
            let handle = BudgetHandle::default();
            if urgent {
                handle.make_urgent();
            }
            let polls =
                Budgeted::new(burn(20, Duration::from_millis(10)), share, handle.clone()).await;
            assert_eq!(polls, 20);
            // measured all the same, never paused (at 0.1 of a core it
            // would have paused about 1.5 s)
            assert!(handle.cpu() >= Duration::from_millis(200));
            assert_eq!(handle.paused(), Duration::ZERO, "share {share}");
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn made_urgent_while_paused_it_goes_on_at_once() {
        let handle = BudgetHandle::default();
        let rewrite = tokio::spawn(Budgeted::new(
            burn(40, Duration::from_millis(10)),
            0.05,
            handle.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let paused = handle.paused();
        handle.make_urgent();
        let started = Instant::now();
        assert_eq!(rewrite.await.unwrap(), 40);
        // at 0.05 of a core the rest would take seconds; unpaced it is
        // the CPU left (under 400 ms) and one last pause
        assert!(started.elapsed() < Duration::from_secs(2), "{paused:?}");
        assert!(handle.cpu() >= Duration::from_millis(400));
    }
}
