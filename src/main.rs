//! The `floe` command line.

mod applier;
mod assignment;
mod cadence;
mod check;
mod config;
mod decode;
mod jobs;
mod maintain;
mod metrics;
mod quickstart;
mod refetch;
mod repeats;
mod replay;
mod secrets;
mod serve;
mod service;
mod sql;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// floe: change-data-capture from Postgres (through Debezium and Kafka) into
/// Apache Iceberg tables.
///
/// Debezium's Postgres connector writes every insert, update, delete and
/// truncate to Kafka as Avro (Confluent wire format, schemas in a schema
/// registry). floe decodes those change events into Arrow change batches
/// and applies them, exactly once, to Iceberg tables (`floe ingest`).
#[derive(Parser, Debug)]
#[command(name = "floe", version, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    /// Log filter, e.g. `info`, `floe=debug,ingest=trace` (also RUST_LOG).
    /// Default: `warn`; for `maintain` and `jobs schedule` also what each
    /// maintenance step and scheduled run did (info).
    #[arg(long, global = true, env = "FLOE_LOG")]
    log: Option<String>,

    /// Log line format: `text` for people, `json` (one object per line,
    /// with level, target, message and fields) for log collectors.
    #[arg(
        long,
        global = true,
        env = "FLOE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  floe quickstart                      the whole pipeline on a bundled recording, into ./floe-quickstart
  floe replay --input DIR --config floe.toml   apply a recording to your lake
  floe decode                          decode the bundled recording of real Debezium output
  floe decode --recording DIR --rows 5 decode your own recording and show rows
  floe ingest --config floe.toml --check   reach Kafka, the registry, the catalog and storage
  floe ingest --config floe.toml       consume Debezium topics into Iceberg tables until stopped
  floe sql --config floe.toml          the SQL shell over the lake (\\? inside for help)
  floe sql -e 'SELECT count(*) FROM taxi_cdc.trips'
  floe jobs list                       the batch jobs in analytics/jobs
  floe jobs run zone_performance_metrics
  floe sql -e \"SELECT count(*) FROM as_of('taxi_cdc.trips', SNAPSHOT_ID)\"
                                       a table as it was (ids: \\snapshots taxi_cdc.trips in floe sql)
  floe maintain run --dry-run          what compaction, expiry and orphan cleanup would do now

A recording is what scripts/record-fixtures.sh writes: recording.jsonl (one
Kafka record per line) and schemas.json (the registry's schemas). See
docs/recording-format.md.";

const JOBS_EXAMPLES: &str = "\
Examples:
  floe jobs list                           every job, its target, mode and schedule (broken ones with why)
  floe jobs run zone_performance_metrics   run one now and record the run
  floe jobs list --jobs-dir other/jobs     the jobs of another folder
  floe jobs schedule                       jobs and maintenance on their schedules until Ctrl-C
  floe jobs schedule --no-maintenance      the jobs only
Every run is a row of floe_meta.job_runs (floe sql -e 'SELECT * FROM floe_meta.job_runs').";

const MAINTAIN_EXAMPLES: &str = "\
Examples:
  floe maintain run --dry-run              what all three would do to every table now
  floe maintain compact taxi_cdc.trips     compact one table with its [maintain] policy
  floe maintain compact --small-file-mb 8 --min-small-files 2   tighter than the policy, every table
  floe maintain expire --older-than 1d --retain-last 5          keep a day of history
  floe maintain orphans --dry-run          list files no snapshot references";

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The whole pipeline on this machine, with nothing else running.
    ///
    /// Replays a bundled recording of real Debezium output for the taxi
    /// schema (26,910 Kafka messages: a snapshot, inserts, updates, deletes,
    /// rows moving between days, an added column, a truncate) through the
    /// decoder and applier `floe ingest` uses, into a local lake in DIR
    /// (filesystem warehouse, SQLite catalog), runs the analytics jobs,
    /// and prints the tables and queries to try. Run again, it resumes the
    /// same lake and applies nothing twice; --fresh starts over.
    Quickstart(quickstart::QuickstartArgs),
    /// Apply a recording of Debezium output to the configured lake.
    ///
    /// The same decoding and applying as `floe ingest`, reading a recording
    /// (docs/recording-format.md; scripts/record-fixtures.sh and
    /// scripts/record-quickstart.sh write them) instead of Kafka. Offsets
    /// are kept in the tables as in ingest: replaying again applies nothing
    /// twice.
    Replay(replay::ReplayArgs),
    /// Decode a recording of Debezium change events and report what it holds.
    ///
    /// Runs the same decoder `floe ingest` uses (Confluent framing, schema
    /// lookup, Debezium envelope, Avro to Arrow) over a recording instead of
    /// a live Kafka topic, and prints one line per change batch: topic,
    /// schema ids, rows per operation, tombstones, offsets, schema changes.
    /// A message that cannot be decoded stops the run with an error naming
    /// its topic, partition and offset.
    Decode(decode::DecodeArgs),
    /// Consume Debezium topics and apply every change to Iceberg tables.
    ///
    /// Reads the configuration from a TOML file (`--config`, default
    /// floe.toml; every key can be overridden by FLOE__SECTION__KEY
    /// environment variables). Each source table's changes are committed
    /// to its Iceberg table once
    /// the oldest is `commit_interval_ms` old (or at `max_rows` /
    /// `max_bytes`; a steady stream, every `commit_interval_ms`), one
    /// snapshot carrying the Kafka offsets it covers; on
    /// start every partition resumes after the offsets its table holds.
    /// SIGINT or SIGTERM commit what is buffered and stop.
    Ingest(service::IngestArgs),
    /// Query the lake in SQL: an interactive shell, or `-e` / `-f`.
    ///
    /// DataFusion over the Iceberg catalog of the config's [lake]: every
    /// namespace is a schema (`SELECT * FROM taxi_cdc.trips`), each query
    /// reads the tables' current snapshots, and `as_of('ns.table', <snapshot
    /// id> | '<time>')` reads a table as it was (times are UTC, RFC 3339 or
    /// `YYYY-MM-DD HH:MM:SS`). Meta commands: \dt, \d TABLE,
    /// \snapshots TABLE, \format table|csv|json, \timing, \q. Read-only:
    /// statements that would write are refused. Ctrl-C cancels the running
    /// statement; Ctrl-D quits.
    Sql(sql::SqlArgs),
    /// Batch jobs: SQL over the lake whose results become Iceberg tables.
    ///
    /// Each job is a manifest (`NAME.toml`: target table, partition, write
    /// mode overwrite|append|overwrite_partitions, schedule, the query file,
    /// inputs it reads as `job.sources.NAME`, `[incremental] tables` whose
    /// changes since the last run it reads as `job.changes.TABLE`, `[load]
    /// path` to run it once per file of a folder or bucket, `fail_when`) in
    /// the jobs folder (`--jobs-dir`, default analytics/jobs). Every run is
    /// recorded in floe_meta.job_runs; batch loads in floe_meta.loaded_files.
    #[command(after_help = JOBS_EXAMPLES)]
    Jobs(jobs::JobsArgs),
    /// Table maintenance: compaction, snapshot expiry, orphan cleanup.
    ///
    /// Each operation runs on one table or every table of the lake, with
    /// --dry-run to print what it would change. `run` does all three with
    /// each table's [maintain] policy, as `floe jobs schedule` does on its
    /// schedules. `floe ingest` already merges the small files it writes
    /// ([lake.tables.merge]); compaction rewrites to larger files and runs
    /// safely beside it.
    #[command(after_help = MAINTAIN_EXAMPLES)]
    Maintain(maintain::MaintainArgs),
    /// Serve the lake: a dashboard, an HTTP API (tables, rows, read-only
    /// SQL, features; JSON, CSV or Arrow IPC) and Arrow Flight SQL.
    ///
    /// GET /api/tables lists the tables; GET /api/tables/NS.TABLE shows
    /// columns, partition fields and snapshots; GET
    /// /api/tables/NS.TABLE/rows?columns=a,b&filter=a:ge:10&order=-b&limit=20
    /// reads rows; POST /api/sql runs one read-only statement sent as the
    /// body (the dialect of `floe sql`); `format=csv` or `format=arrow` on
    /// any of them changes the output; the OpenAPI document is at
    /// /api/openapi.json. [serve] in the config: listen (default
    /// 127.0.0.1:8080), token (required unless listening on loopback; or
    /// FLOE__SERVE__TOKEN), query_timeout_secs (30), max_rows (100000),
    /// max_concurrent_queries (4), query_memory_mb (512), flight_listen
    /// (127.0.0.1:50051), flight_max_rows, tls_cert_file and tls_key_file
    /// (both ports then speak TLS), ingest_metrics (floe ingest's
    /// /metrics, for the dashboard). The dashboard is at /; Flight SQL
    /// takes the token as `authorization: Bearer TOKEN`. Every table's
    /// newest commit is read at each request.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(serve::ServeArgs),
}

const SERVE_EXAMPLES: &str = "Examples:
  floe serve --config floe.toml
  curl -s localhost:8080/api/tables
  curl -s 'localhost:8080/api/tables/taxi_cdc.trips/rows?columns=trip_id,fare_amount&order=-fare_amount&limit=5'
  curl -s -X POST --data 'SELECT count(*) FROM taxi_cdc.trips' 'localhost:8080/api/sql?format=csv'
  FLOE__SERVE__TOKEN=$(cat token) floe serve --listen 0.0.0.0:8080";

fn main() -> ExitCode {
    // before any thread starts: the standard library reads it once
    if let Some((name, value)) = library_backtraces(std::env::var_os(LIB_BACKTRACE).as_deref()) {
        std::env::set_var(name, value);
    }
    secrets::keep_out_of_environment(std::env::vars());
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let default = match &cli.command {
        Command::Maintain(_) | Command::Jobs(_) => {
            "warn,floe::maintain=info,lakehouse::maintain=info,analytics::jobs::schedule=info"
        }
        Command::Serve(_) => "warn,floe::serve=info",
        _ => "warn",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| cli.log.clone())
        .unwrap_or_else(|| default.to_string());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(secrets::RedactedStderr)
        .with_ansi(colour_logs());
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match cli.command {
        Command::Quickstart(args) => quickstart::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Ingest(args) => service::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Maintain(args) => maintain::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", secrets::redact(&report(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The variable that turns on backtraces for errors (not panics) alone.
const LIB_BACKTRACE: &str = "RUST_LIB_BACKTRACE";

/// What to set so that errors capture no backtrace, given the current
/// `RUST_LIB_BACKTRACE`: `RUST_BACKTRACE=1`, set to see where a panic
/// came from, otherwise turns them on for every error too, and iceberg
/// 0.10.1 makes and drops errors on its normal read path (one per column
/// of every file it reads): a full scan of 1,861 small files took 35%
/// longer (docs/benchmarks.md, "Where a small-file scan's CPU goes, and
/// backtraces of dropped errors"). floe
/// reports an error by its chain of causes and never prints its
/// backtrace; panics keep theirs. An explicit `RUST_LIB_BACKTRACE` is
/// left as it is.
fn library_backtraces(current: Option<&std::ffi::OsStr>) -> Option<(&'static str, &'static str)> {
    current.is_none().then_some((LIB_BACKTRACE, "0"))
}

/// Colour only for a person at a terminal: never in files, pipes and
/// collectors, nor with `NO_COLOR` set (no-color.org).
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether `e` is a write to a reader that has gone (`floe ... | head -1`):
/// the reader has what it wanted, so floe ends quietly and successfully.
fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `println!` panics when stdout's reader has gone; that is
/// [`is_closed_pipe`] too, not a crash. Every other panic is reported as
/// Rust reports it, unless its message holds a secret: then floe reports
/// it with the secret hidden.
fn quiet_on_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        let hidden = secrets::redact(message);
        if hidden != message {
            let thread = std::thread::current();
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!(
                "\nthread '{}' panicked{location}:\n{hidden}",
                thread.name().unwrap_or("<unnamed>")
            );
            return;
        }
        report(info)
    }));
}

/// The error and its causes on one line. Library errors often repeat their
/// cause in their own message; a cause already said is not said again.
/// A cause the error above it has put in a sentence: iceberg's missing
/// table or namespace (its own text is the identifier's debug form).
fn said_already(cause: &(dyn std::error::Error + 'static)) -> bool {
    // libraries hold it boxed or not
    let iceberg = cause
        .downcast_ref::<iceberg::Error>()
        .or_else(|| cause.downcast_ref::<Box<iceberg::Error>>().map(|b| &**b));
    iceberg.is_some_and(|e| {
        matches!(
            e.kind(),
            iceberg::ErrorKind::TableNotFound | iceberg::ErrorKind::NamespaceNotFound
        )
    })
}

fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) || said_already(cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn errors_capture_no_backtrace_unless_asked_for_them() {
        assert_eq!(library_backtraces(None), Some(("RUST_LIB_BACKTRACE", "0")));
        assert_eq!(library_backtraces(Some(OsStr::new("1"))), None);
        assert_eq!(library_backtraces(Some(OsStr::new("0"))), None);
    }
}
