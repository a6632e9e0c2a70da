//! `floe replay`: a recording of Debezium output applied to a lake through
//! the same decoder and applier as `floe ingest`; only the Kafka consumer is
//! replaced by the recording (which carries its registry schemas).
//!
//! Offsets work as in ingest: every commit stores the offsets it covers,
//! and a change the table already holds is skipped, so replaying again (or
//! after an interruption) applies only what is missing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::progress::Progress;
use anyhow::{Context, Result};
use ingest::{ChangeDecoder, Recording};
use lakehouse::Lake;

use crate::applier::Applier;
use crate::metrics::Metrics;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The recording: a directory with recording.jsonl (or
    /// recording.jsonl.gz) and schemas.json (docs/recording-format.md).
    #[arg(long, value_name = "DIR")]
    input: PathBuf,

    /// The configuration file; only its [lake] section is read.
    #[arg(long, env = "FLOE_CONFIG", default_value = "floe.toml")]
    config: PathBuf,

    /// Messages decoded per commit (per table), like ingest's `max_rows`.
    #[arg(long, default_value_t = 5000)]
    batch_messages: usize,
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub messages: usize,
    /// Changes newly applied (not counting ones the lake already held).
    pub events: usize,
    pub commits: usize,
    pub tables: usize,
    pub took: Duration,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let recording = Recording::load(&args.input)
        .with_context(|| format!("loading the recording in {}", args.input.display()))?;
    let lake = crate::config::load_lake(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let replayed = runtime.block_on(async {
        let lake = Arc::new(Lake::open(&lake).await?);
        replay(lake, &recording, args.batch_messages).await
    })?;
    println!(
        "replayed {} messages from {}: {} changes applied to {} tables in {} commits, {:.1} s",
        replayed.messages,
        args.input.display(),
        replayed.events,
        replayed.tables,
        replayed.commits,
        replayed.took.as_secs_f64()
    );
    Ok(())
}

/// Decodes and applies `recording` to `lake`, `batch_messages` at a time;
/// the next slice decodes while the last one commits, as in ingest.
pub async fn replay(
    lake: Arc<Lake>,
    recording: &Recording,
    batch_messages: usize,
) -> Result<Replayed> {
    let started = Instant::now();
    // as ingest does by default: incremental snapshots asked for in the
    // signal table are reconciled when they end
    let mut applier = Applier::new(lake, Arc::new(Metrics::default()), false)
        .with_signal_table(&crate::config::IngestConfig::default().signal_table);
    let mut decoder = ChangeDecoder::new(recording.schemas.clone());
    let mut done = Replayed::default();
    let mut progress = Progress::start("replay");
    for slice in recording.messages.chunks(batch_messages.max(1)) {
        for message in slice {
            if let Err(e) = decoder.push(&message.as_raw()).await {
                // as ingest does: what precedes the message is committed
                // (later runs resume after it), then floe stops at it
                applier.apply_now(decoder.flush()).await?;
                return Err(e).with_context(|| {
                    format!(
                        "decoding {} partition {} offset {}",
                        message.topic, message.partition, message.offset
                    )
                });
            }
        }
        let applied = applier.finished().await?;
        done.events += applied.events;
        done.commits += applied.commits;
        applier.start(decoder.flush());
        done.messages += slice.len();
        progress.add_rows(slice.len() as u64);
    }
    // the merges under way finish: a replay leaves its tables merged
    let applied = applier.settle().await?;
    progress.finish();
    done.events += applied.events;
    done.commits += applied.commits;
    done.tables = applier.tables();
    done.took = started.elapsed();
    Ok(done)
}
