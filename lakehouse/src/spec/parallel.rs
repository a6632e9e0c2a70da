//! Writing the files of one commit on every core.
//!
//! Encoding Parquet is CPU work, and one commit writes a file per partition
//! it touches (a batch of 10,000 changes over a month of days: about sixty
//! data and delete files). Written one after another on an async worker
//! they take one core however many the machine has, and keep that worker
//! from polling Kafka and storage meanwhile. [`write_each`] runs each file's
//! write on tokio's blocking pool instead, four per core at once (at
//! least four, at most sixteen), so a commit's files encode in parallel and
//! their uploads overlap: a small file's write is mostly waiting for the
//! object store, and with one write per core a commit of sixty small files
//! to S3 took half a second on two cores (docs/benchmarks.md, issue 16).

use std::future::Future;

use futures::{StreamExt, TryStreamExt};

use crate::error::LakehouseError;

/// Runs `writes` (each writing one file, for `operation`) at most
/// [`writes_at_once`] at a time, off the async workers; returns their
/// results in order, or the first error. A single write runs in place.
pub(crate) async fn write_each<T, W>(
    operation: &'static str,
    writes: Vec<W>,
) -> Result<Vec<T>, LakehouseError>
where
    T: Send + 'static,
    W: Future<Output = Result<T, LakehouseError>> + Send + 'static,
{
    if writes.len() <= 1 {
        let mut out = Vec::with_capacity(writes.len());
        for write in writes {
            out.push(write.await?);
        }
        return Ok(out);
    }
    let handle = tokio::runtime::Handle::current();
    let width = writes_at_once();
    futures::stream::iter(writes)
        .map(|write| {
            let handle = handle.clone();
            async move {
                // a blocking-pool thread drives the write's I/O through the
                // runtime's handle
                match tokio::task::spawn_blocking(move || handle.block_on(write)).await {
                    Ok(result) => result,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => Err(LakehouseError::ShuttingDown { operation }),
                }
            }
        })
        .buffered(width)
        .try_collect()
        .await
}

/// Files written at once: four per core, from four to sixteen.
pub(crate) fn writes_at_once() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 4).clamp(4, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn results_keep_their_order_and_the_first_error_wins() {
        let writes: Vec<_> = (0..8u64)
            .map(|i| async move {
                // later writes finish first
                tokio::time::sleep(std::time::Duration::from_millis(40 - 5 * i)).await;
                Ok(i)
            })
            .collect();
        assert_eq!(
            write_each("test", writes).await.unwrap(),
            (0..8).collect::<Vec<_>>()
        );

        let writes: Vec<_> = (0..4u64)
            .map(|i| async move {
                if i == 2 {
                    Err(LakehouseError::TableProperty {
                        table: "t".into(),
                        reason: format!("write {i} failed"),
                    })
                } else {
                    Ok(i)
                }
            })
            .collect();
        let e = write_each("test", writes).await.unwrap_err();
        assert!(e.to_string().contains("write 2 failed"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn writes_run_side_by_side_off_the_async_worker() {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return;
        }
        // two writes that each block until the other has started: both
        // finish only if they run at once, which the one async worker alone
        // cannot do
        use std::sync::mpsc::channel;
        let (to_b, from_a) = channel();
        let (to_a, from_b) = channel();
        let writes: Vec<_> = [(0, to_b, from_b), (1, to_a, from_a)]
            .into_iter()
            .map(|(i, tell, hear)| async move {
                let _ = tell.send(());
                hear.recv_timeout(std::time::Duration::from_secs(5))
                    .map_err(|_| LakehouseError::TableProperty {
                        table: "t".into(),
                        reason: format!("write {i} ran alone"),
                    })?;
                Ok(i)
            })
            .collect();
        assert_eq!(write_each("test", writes).await.unwrap(), vec![0, 1]);
    }
}
