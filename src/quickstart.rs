//! `floe quickstart`: the whole pipeline with nothing running. A recording
//! of real Debezium output for the taxi schema, bundled in the binary, is
//! replayed (`replay`) into a local lake (filesystem warehouse, SQLite
//! catalog); then the analytics jobs run over it, and the user gets the
//! tables and three queries to try.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use analytics::jobs::{load_jobs, run_job};
use analytics::LakeSession;
use anyhow::{bail, Context, Result};
use ingest::Recording;
use lakehouse::Lake;

use crate::replay::replay;

/// The bundled recording (scripts/record-quickstart.sh): 26,910 Kafka
/// records of the taxi workload in tests/fixtures/quickstart.
const RECORDING: &[u8] = include_bytes!("../tests/fixtures/quickstart/recording.jsonl.gz");
const SCHEMAS: &str = include_str!("../tests/fixtures/quickstart/schemas.json");

/// The jobs the quickstart runs, in dependency order.
const JOBS: [&str; 10] = [
    "reference_taxi_zones",
    "weather_hourly",
    "nyc_taxi_trips",
    "zone_performance_metrics",
    "trip_aggregations",
    "trip_weather_correlation",
    "demand_prediction_features",
    "fare_prediction_features",
    "zone_activity",
    "data_quality",
];

#[derive(clap::Args, Debug)]
pub struct QuickstartArgs {
    /// Where the lake and its floe.toml go. Run again, the quickstart
    /// resumes the same lake (nothing is applied twice). A floe.toml there
    /// that the quickstart did not write is never overwritten.
    #[arg(long, default_value = "floe-quickstart")]
    dir: PathBuf,

    /// Start from an empty lake: delete DIR's warehouse first (only a
    /// quickstart's: DIR/floe.toml must be one the quickstart wrote).
    #[arg(long)]
    fresh: bool,

    /// The jobs folder (default: analytics/jobs here, else in the source
    /// tree floe was built from).
    #[arg(long, env = "FLOE_JOBS_DIR")]
    jobs_dir: Option<PathBuf>,
}

pub fn run(args: QuickstartArgs) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = std::path::absolute(&args.dir)?;
    let warehouse = dir.join("warehouse");
    let config = dir.join("floe.toml");
    // the folder may be someone's project: touch only what a quickstart
    // made, which its floe.toml's first line says
    let ours = match std::fs::read_to_string(&config) {
        Ok(text) if text.starts_with(CONFIG_MARK) => true,
        Ok(_) => bail!(
            "{} exists and was not written by floe quickstart; the quickstart will not \
             overwrite it. Run it in a folder of its own (--dir floe-quickstart), or move \
             that file away.",
            config.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", config.display())),
    };
    if args.fresh && warehouse.exists() {
        if !ours {
            bail!(
                "--fresh: {} has no floe.toml written by floe quickstart beside it, so it is \
                 not the quickstart's lake; nothing deleted",
                warehouse.display()
            );
        }
        std::fs::remove_dir_all(&warehouse)
            .with_context(|| format!("cannot delete {}", warehouse.display()))?;
        println!(
            "floe quickstart: --fresh deleted the quickstart's lake at {}",
            warehouse.display()
        );
    }
    std::fs::write(&config, config_text(&warehouse))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let lake_config = crate::config::load_lake(&config)?;
    let recording = bundled_recording()?;
    let jobs_dir = args.jobs_dir.clone().or_else(default_jobs_dir);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let lake = Arc::new(Lake::open(&lake_config).await?);
        println!(
            "floe quickstart: replaying {} recorded Debezium messages into {}",
            recording.messages.len(),
            warehouse.display()
        );
        let replayed = replay(lake.clone(), &recording, 5000).await?;
        println!(
            "  {} changes applied in {} commits ({} already in the lake), {:.1} s",
            replayed.events,
            replayed.commits,
            count_skipped(&recording, replayed.events),
            replayed.took.as_secs_f64()
        );
        let session = LakeSession::over(lake.clone()).await?;
        match &jobs_dir {
            Some(jobs_dir) => run_jobs(&session, jobs_dir).await?,
            None => println!("  no jobs folder found (analytics/jobs); skipping the jobs"),
        }
        print_tables(&session).await?;
        anyhow::Ok(())
    })?;
    let floe = if Path::new("scripts/floe").is_file() {
        "scripts/floe"
    } else {
        "floe"
    };
    let c = config.display();
    println!(
        "\nDone in {:.1} s. Try:\n\
         \x20 {floe} sql --config {c} -e \"SELECT count(*) AS trips, sum(total_amount) AS revenue FROM taxi_cdc.trips\"\n\
         \x20 {floe} sql --config {c} -e \"SELECT zone, day, pickups, revenue FROM analytics.zone_performance_metrics ORDER BY pickups DESC LIMIT 5\"\n\
         \x20 {floe} sql --config {c} -e \"SELECT window_start, trips, revenue FROM realtime.trip_aggregations ORDER BY trips DESC LIMIT 5\"\n\
         or the shell: {floe} sql --config {c}   (\\dt lists the tables, \\snapshots taxi_cdc.trips their history)\n\
         or the dashboard and HTTP API: {floe} serve --config {c}   then open http://127.0.0.1:8080/",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The recording bundled in the binary.
pub fn bundled_recording() -> Result<Recording> {
    Recording::parse(
        Path::new("recording.jsonl.gz (bundled)"),
        RECORDING,
        Path::new("schemas.json (bundled)"),
        SCHEMAS,
    )
    .context("the bundled recording")
}

/// The quickstart lake's configuration: local warehouse and SQLite
/// catalog, trips partitioned by pickup day.
/// The first line of the floe.toml a quickstart writes: how a later run
/// knows the file (and the lake beside it) are the quickstart's.
const CONFIG_MARK: &str = "# written by floe quickstart";

fn config_text(warehouse: &Path) -> String {
    format!(
        "{CONFIG_MARK}; usable with any floe command (--config)\n\
         [lake]\n\
         warehouse = {:?}\n\n\
         [lake.tables.\"public.trips\"]\n\
         partition = [\"day(pickup_datetime)\"]\n",
        warehouse.display().to_string()
    )
}

/// Recorded messages that carry a change (tombstones do not), less those
/// applied now: what an earlier run had applied.
fn count_skipped(recording: &Recording, applied: usize) -> usize {
    let changes = recording
        .messages
        .iter()
        .filter(|m| m.value.is_some())
        .count();
    changes.saturating_sub(applied)
}

fn default_jobs_dir() -> Option<PathBuf> {
    [
        PathBuf::from("analytics/jobs"),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/analytics/jobs")),
    ]
    .into_iter()
    .find(|d| d.is_dir())
}

async fn run_jobs(session: &LakeSession, dir: &Path) -> Result<()> {
    let folder = load_jobs(dir)?;
    println!("running the jobs in {}", dir.display());
    for name in JOBS {
        let job = match folder.job(name) {
            Ok(job) => job,
            Err(why) => {
                println!("  {name}: skipped: {why}");
                continue;
            }
        };
        match run_job(session, job).await {
            Ok(run) => println!(
                "  {name}: {} rows to {} in {:.1} s",
                run.rows_written,
                job.manifest.target,
                (run.finished_at_us - run.started_at_us) as f64 / 1e6
            ),
            // a failed check is news, not the end of the quickstart
            Err(e) => println!("  {name}: FAILED: {e}"),
        }
    }
    Ok(())
}

async fn print_tables(session: &LakeSession) -> Result<()> {
    session.refresh().await?;
    let catalog = session.lake.catalog().as_ref();
    println!("\n{:<40} {:>9} {:>10}", "table", "rows", "snapshots");
    for namespace in catalog.list_namespaces(None).await? {
        for ident in catalog.list_tables(&namespace).await? {
            let table = catalog.load_table(&ident).await?;
            let name = format!("{}.{}", namespace.to_url_string(), ident.name());
            let batches = session.sql(&format!("SELECT count(*) FROM {name}")).await?;
            let rows = batches
                .first()
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .map(|a| a.value(0))
                })
                .unwrap_or(0);
            println!(
                "{name:<40} {rows:>9} {:>10}",
                table.metadata().snapshots().count()
            );
        }
    }
    Ok(())
}
