//! `floe maintain`: table maintenance while ingest runs, by hand or (as
//! tasks for `floe jobs schedule`) on the `[maintain]` section's schedules.

use std::path::PathBuf;
use std::sync::Arc;

use analytics::jobs::{Task, TaskRun};
use anyhow::{bail, Context, Result};
use iceberg::TableIdent;
use lakehouse::maintain::policy::{
    Age, CompactSettings, ExpireSettings, OrphanSettings, TableSettings, MIN_ORPHAN_AGE,
};
use lakehouse::maintain::{
    compact, expire, orphans, CompactPolicy, ExpirePolicy, MaintainConfig, Operation, OrphanPolicy,
    TablePolicy,
};
use lakehouse::Lake;

#[derive(clap::Args, Debug)]
pub struct MaintainArgs {
    /// The configuration file; its [lake] and [maintain] sections are read.
    #[arg(long, env = "FLOE_CONFIG", default_value = "floe.toml", global = true)]
    config: PathBuf,

    /// Print what would change, change nothing.
    #[arg(long, global = true)]
    dry_run: bool,

    #[command(subcommand)]
    command: MaintainCommand,
}

#[derive(clap::Subcommand, Debug)]
enum MaintainCommand {
    /// Rewrite partitions with many small files or many deleted rows.
    ///
    /// A partition is rewritten when it has at least --min-small-files
    /// data files under --small-file-mb, or when its position deletes
    /// remove at least --max-deleted-ratio of its rows: its live rows go
    /// to new files of about --target-file-mb, and the old data and delete
    /// files leave the table in one snapshot. Safe while `floe ingest`
    /// commits to the same table: a compaction that loses the race commits
    /// on top of the other commit, or plans again when that commit changed
    /// a rewritten row. Options left out come from [maintain.compact] (and
    /// the table's own [maintain.tables."ns.table"]), else the defaults
    /// shown.
    Compact {
        /// `namespace.table`; default: every table in the lake.
        table: Option<String>,
        /// Data files under this many MiB count as small. [default: 32]
        #[arg(long, value_name = "MIB")]
        small_file_mb: Option<u64>,
        /// Rewrite a partition once it has this many small data files.
        /// [default: 4]
        #[arg(long, value_name = "N")]
        min_small_files: Option<usize>,
        /// Or once its position deletes remove this share of its rows
        /// (0 to 1). [default: 0.2]
        #[arg(long, value_name = "SHARE")]
        max_deleted_ratio: Option<f64>,
        /// Write the new files at about this many MiB. [default: 128]
        #[arg(long, value_name = "MIB")]
        target_file_mb: Option<u64>,
    },
    /// Expire old snapshots and delete the files only they reached.
    ///
    /// Keeps the current snapshot (which carries the Kafka offsets ingest
    /// resumes from), the newest --retain-last of its history, every
    /// snapshot younger than --older-than, and every snapshot a branch or
    /// tag names. Time travel to an expired snapshot is no longer possible,
    /// and an incremental job whose last source snapshot expired reads its
    /// source whole once. Options left out come from [maintain.expire].
    Expire {
        /// `namespace.table`; default: every table in the lake.
        table: Option<String>,
        /// Expire snapshots older than this: `7d`, `12h`, `30m`, `90s`.
        /// [default: 7d]
        #[arg(long, value_name = "AGE")]
        older_than: Option<Age>,
        /// Keep this many of the newest snapshots, however old.
        /// [default: 10]
        #[arg(long, value_name = "N")]
        retain_last: Option<usize>,
    },
    /// Delete files in a table's folders that no metadata references.
    ///
    /// Lists the table's data/ and metadata/ folders and deletes the files
    /// that neither the current metadata, the metadata log, nor any
    /// snapshot's manifest list, manifests or entries name: what a writer
    /// that crashed or lost a commit race, or an interrupted expiry, left.
    /// Files younger than --older-than are never touched, since a file a
    /// writer has written but not yet committed looks just the same; the
    /// age must be at least 1h. Options left out come from
    /// [maintain.orphans].
    Orphans {
        /// `namespace.table`; default: every table in the lake.
        table: Option<String>,
        /// Delete only unreferenced files older than this, at least `1h`.
        /// [default: 3d]
        #[arg(long, value_name = "AGE")]
        older_than: Option<Age>,
    },
    /// Compact, expire and clean orphans now, with each table's policy.
    ///
    /// Compaction, then expiry, then orphan cleanup, each with the table's
    /// policy from [maintain]: what `floe jobs schedule` does on its
    /// schedules, all at once. Operations a table has `schedule = "off"`
    /// for are skipped.
    Run {
        /// `namespace.table`; default: every table in the lake.
        table: Option<String>,
    },
}

pub fn run(args: MaintainArgs) -> Result<()> {
    let lake = crate::config::load_lake(&args.config)?;
    let mut config = crate::config::load_maintain(&args.config)?;
    // options given win over the file, for every table
    let mut flags = TableSettings::default();
    let (table, operations) = match args.command {
        MaintainCommand::Compact {
            table,
            small_file_mb,
            min_small_files,
            max_deleted_ratio,
            target_file_mb,
        } => {
            flags.compact = CompactSettings {
                schedule: None,
                small_file_mb,
                min_small_files,
                max_deleted_ratio,
                target_file_mb,
            };
            (table, vec![Operation::Compact])
        }
        MaintainCommand::Expire {
            table,
            older_than,
            retain_last,
        } => {
            flags.expire = ExpireSettings {
                schedule: None,
                older_than,
                retain_last,
            };
            (table, vec![Operation::Expire])
        }
        MaintainCommand::Orphans { table, older_than } => {
            if let Some(age) = older_than.filter(|a| a.0 < MIN_ORPHAN_AGE) {
                bail!(
                    "--older-than {age}: at least 1h, or a file a writer has written \
                     but not yet committed could be deleted"
                );
            }
            flags.orphans = OrphanSettings {
                schedule: None,
                older_than,
            };
            (table, vec![Operation::Orphans])
        }
        MaintainCommand::Run { table } => (table, Operation::ALL.to_vec()),
    };
    config.override_with(&flags);
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the maintenance settings")?;
    let by_hand = operations.len() == 1;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let lake = Lake::open(&lake).await?;
        for ident in tables(&lake, table.as_deref()).await? {
            let name = ident.to_string();
            for &operation in &operations {
                // by hand, an operation runs even where its schedule is off
                if !by_hand && config.schedule(operation, &name).is_none() {
                    println!("{name}: {} is off", operation.name());
                    continue;
                }
                let policy = config.policy(operation, &name);
                let lines = apply(&lake, &ident, &policy, args.dry_run).await?;
                for line in lines {
                    println!("{line}");
                }
            }
        }
        anyhow::Ok(())
    })
}

/// Runs one operation on one table; returns what it did, for a person.
async fn apply(
    lake: &Lake,
    ident: &TableIdent,
    policy: &TablePolicy,
    dry_run: bool,
) -> Result<Vec<String>> {
    Ok(match policy {
        TablePolicy::Compact(p) => describe_compact(lake, ident, p, dry_run).await?,
        TablePolicy::Expire(p) => describe_expire(lake, ident, p, dry_run).await?,
        TablePolicy::Orphans(p) => describe_orphans(lake, ident, p, dry_run).await?,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn describe_compact(
    lake: &Lake,
    ident: &TableIdent,
    policy: &CompactPolicy,
    dry_run: bool,
) -> Result<Vec<String>> {
    let started = std::time::Instant::now();
    let report = compact(lake, ident, policy, dry_run)
        .await
        .with_context(|| format!("compacting {ident}"))?;
    let data: usize = report.partitions.iter().map(|p| p.data_files.len()).sum();
    let deletes: usize = report.partitions.iter().map(|p| p.delete_files.len()).sum();
    let line = if report.partitions.is_empty() {
        format!("{ident}: nothing to compact")
    } else if dry_run {
        format!(
            "{ident}: would rewrite {} partitions: {data} data and {deletes} delete files, {:.1} MiB",
            report.partitions.len(),
            mib(report.bytes_before)
        )
    } else {
        format!(
            "{ident}: rewrote {} partitions: {data} data and {deletes} delete files ({:.1} MiB) into {} files ({:.1} MiB), {} rows, {} commit attempt(s), {:.1} s",
            report.partitions.len(),
            mib(report.bytes_before),
            report.files_added,
            mib(report.bytes_after),
            report.rows_written,
            report.attempts,
            started.elapsed().as_secs_f64()
        )
    };
    Ok(vec![line])
}

async fn describe_expire(
    lake: &Lake,
    ident: &TableIdent,
    policy: &ExpirePolicy,
    dry_run: bool,
) -> Result<Vec<String>> {
    let report = expire(lake, ident, policy, dry_run)
        .await
        .with_context(|| format!("expiring {ident}"))?;
    let (expired, deleted) = if dry_run {
        ("would expire", "would delete")
    } else {
        ("expired", "deleted")
    };
    let mut lines = vec![format!(
        "{ident}: {expired} {} snapshots (keeping {}); {deleted} the {} files only they reached",
        report.expired.len(),
        report.kept,
        report.files.len()
    )];
    if dry_run {
        lines.extend(report.files.iter().map(|f| format!("  {f}")));
    }
    Ok(lines)
}

async fn describe_orphans(
    lake: &Lake,
    ident: &TableIdent,
    policy: &OrphanPolicy,
    dry_run: bool,
) -> Result<Vec<String>> {
    let report = orphans(lake, ident, policy, dry_run)
        .await
        .with_context(|| format!("cleaning orphans of {ident}"))?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut lines = vec![format!(
        "{ident}: {verb} {} orphan files ({:.1} MiB) of {} listed; {} unreferenced files are younger than {} and stay",
        report.orphans.len(),
        mib(report.orphan_bytes()),
        report.listed,
        report.young.len(),
        Age(policy.older_than)
    )];
    if dry_run {
        lines.extend(report.orphans.iter().map(|f| format!("  {}", f.location)));
    }
    Ok(lines)
}

/// The tables `only` names (`namespace.table`), or every table.
async fn tables(lake: &Lake, only: Option<&str>) -> Result<Vec<TableIdent>> {
    if let Some(name) = only {
        let (namespace, table) = name
            .split_once('.')
            .with_context(|| format!("{name}: expected namespace.table"))?;
        return Ok(vec![TableIdent::from_strs([namespace, table])?]);
    }
    let mut out = Vec::new();
    for namespace in lake.catalog().list_namespaces(None).await? {
        out.extend(lake.catalog().list_tables(&namespace).await?);
    }
    Ok(out)
}

/// Which tables `operation` runs on at `schedule`, for `floe jobs list`.
pub fn scheduled_tables(config: &MaintainConfig, operation: Operation, schedule: &str) -> String {
    let on_it = |t: &str| config.schedule(operation, t).as_deref() == Some(schedule);
    if on_it("") {
        match config.tables.keys().filter(|t| !on_it(t)).count() {
            0 => "every table".to_string(),
            n => format!("every table but {n} configured"),
        }
    } else {
        let own: Vec<&str> = config
            .tables
            .keys()
            .filter(|t| on_it(t))
            .map(String::as_str)
            .collect();
        own.join(", ")
    }
}

/// The maintenance tasks for `floe jobs schedule`: one per operation and
/// schedule in use. Each run lists the lake's tables (ingest creates new
/// ones) and runs the operation on those whose schedule it is; a table
/// that fails is logged and the others still run.
pub fn scheduled_tasks(lake: Arc<Lake>, config: &MaintainConfig) -> Result<Vec<Task>> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the maintenance settings")?;
    let config = Arc::new(config.clone());
    let mut tasks = Vec::new();
    for operation in Operation::ALL {
        for schedule in config.schedules(operation) {
            let (lake, config, this) = (lake.clone(), config.clone(), schedule.clone());
            let run: TaskRun = Arc::new(move || {
                let (lake, config, this) = (lake.clone(), config.clone(), this.clone());
                Box::pin(async move {
                    let idents = tables(&lake, None).await.map_err(|e| format!("{e:#}"))?;
                    let (mut failed, mut done) = (0, 0);
                    for ident in idents {
                        let name = ident.to_string();
                        if config.schedule(operation, &name).as_deref() != Some(this.as_str()) {
                            continue;
                        }
                        let policy = config.policy(operation, &name);
                        match apply(&lake, &ident, &policy, false).await {
                            Ok(lines) => {
                                done += 1;
                                lines.iter().for_each(|l| tracing::info!("{l}"));
                            }
                            Err(e) => {
                                failed += 1;
                                tracing::error!("maintain.{}: {name}: {e:#}", operation.name());
                            }
                        }
                    }
                    match failed {
                        0 => Ok(format!("{done} tables")),
                        n => Err(format!("{n} of {} tables failed", n + done)),
                    }
                })
            });
            tasks.push(Task {
                name: format!("maintain.{}", operation.name()),
                schedule,
                run,
            });
        }
    }
    Ok(tasks)
}
