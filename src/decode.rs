//! `floe decode`: a recording through the decoder, summarised.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use ingest::{columns, ChangeBatch, ChangeDecoder, Op, Pushed, Recording};

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Directory holding recording.jsonl (or .gz) and schemas.json.
    /// Default: tests/fixtures/debezium in this checkout, else the
    /// recording bundled in floe (the quickstart's).
    #[arg(long, env = "FLOE_RECORDING")]
    recording: Option<PathBuf>,

    /// Also print the first N rows of each batch (operation, key, after-image).
    #[arg(long, value_name = "N", default_value_t = 0)]
    rows: usize,

    /// Only decode topics whose name contains this text.
    #[arg(long)]
    topic: Option<String>,
}

pub fn run(args: DecodeArgs) -> Result<()> {
    let fixtures = PathBuf::from("tests/fixtures/debezium");
    let (recording, source) = match &args.recording {
        Some(dir) => (
            Recording::load(dir)
                .with_context(|| format!("loading the recording in {}", dir.display()))?,
            dir.display().to_string(),
        ),
        None if fixtures.is_dir() => (
            Recording::load(&fixtures).context("loading tests/fixtures/debezium")?,
            fixtures.display().to_string(),
        ),
        None => (
            crate::quickstart::bundled_recording()?,
            "the bundled quickstart recording".to_string(),
        ),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let started = Instant::now();
    let mut decoder = ChangeDecoder::new(recording.schemas.clone());
    let (mut messages, mut unattached) = (0usize, 0usize);
    for message in &recording.messages {
        if args
            .topic
            .as_deref()
            .is_some_and(|t| !message.topic.contains(t))
        {
            continue;
        }
        messages += 1;
        if runtime.block_on(decoder.push(&message.as_raw()))? == Pushed::UnattachedTombstone {
            unattached += 1;
        }
    }
    let batches = decoder.flush();
    let elapsed = started.elapsed();

    let mut out = std::io::stdout().lock();
    let topics = {
        let mut t: Vec<&str> = batches.iter().map(|b| b.topic.as_str()).collect();
        t.dedup();
        t.len()
    };
    writeln!(
        out,
        "decoded {messages} messages from {} into {} change batches over {topics} topics in {:.1} ms",
        source,
        batches.len(),
        elapsed.as_secs_f64() * 1e3
    )?;
    if unattached > 0 {
        writeln!(
            out,
            "{unattached} tombstone(s) arrived before any event of their topic and were skipped"
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:>9} {:>5} {:>4} {:>4} {:>4} {:>4} {:>4} {:>6}  {:<12} notes",
        "topic", "schema", "rows", "c", "u", "d", "r", "t", "tombs", "offsets"
    )?;
    for b in &batches {
        summarise(&mut out, b)?;
    }
    if args.rows > 0 {
        for b in &batches {
            writeln!(out, "\n{} (schema {}):", b.topic, b.version.value_schema_id)?;
            let shown = b.records.slice(0, args.rows.min(b.num_rows()));
            writeln!(out, "{}", pretty_format_batches(&[rows_view(&shown)?])?)?;
        }
    }
    Ok(())
}

fn summarise(out: &mut impl Write, b: &ChangeBatch) -> Result<()> {
    let mut counts = [0usize; 5];
    for i in 0..b.num_rows() {
        if let Some(op) = b.op(i) {
            counts[op as usize] += 1;
        }
    }
    let [c, u, d, r, t] =
        [Op::Create, Op::Update, Op::Delete, Op::Read, Op::Truncate].map(|op| counts[op as usize]);
    let schema = match b.version.key_schema_id {
        Some(k) => format!("{}/{k}", b.version.value_schema_id),
        None => b.version.value_schema_id.to_string(),
    };
    let offsets: Vec<String> = b
        .offsets
        .iter()
        .map(|o| format!("p{}:{}-{}", o.partition, o.first, o.last))
        .collect();
    let mut notes = Vec::new();
    if let Some(prev) = b.previous_version {
        notes.push(format!("schema changed (was {})", prev.value_schema_id));
    }
    if b.key_fields.is_empty() {
        notes.push("no primary key".to_string());
    }
    let unchanged: usize = (0..b.num_rows())
        .filter(|&i| !b.unchanged(i).is_empty())
        .count();
    if unchanged > 0 {
        notes.push(format!("{unchanged} row(s) with unchanged TOAST columns"));
    }
    writeln!(
        out,
        "{:<28} {:>9} {:>5} {:>4} {:>4} {:>4} {:>4} {:>4} {:>6}  {:<12} {}",
        b.topic,
        schema,
        b.num_rows(),
        c,
        u,
        d,
        r,
        t,
        b.tombstones,
        offsets.join(","),
        notes.join("; ")
    )?;
    Ok(())
}

/// The columns a person wants to see: operation, offset, key, after.
fn rows_view(batch: &RecordBatch) -> Result<RecordBatch> {
    let keep: Vec<usize> = [
        columns::OP,
        columns::OFFSET,
        columns::KEY,
        columns::AFTER,
        columns::UNCHANGED,
    ]
    .iter()
    .filter_map(|name| batch.schema().index_of(name).ok())
    .collect();
    Ok(batch.project(&keep)?)
}
