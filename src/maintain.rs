//! `floe maintain`: table maintenance while ingest runs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use iceberg::TableIdent;
use lakehouse::maintain::{compact, expire, CompactPolicy, ExpirePolicy};
use lakehouse::Lake;

#[derive(clap::Args, Debug)]
pub struct MaintainArgs {
    /// The configuration file; only its [lake] section is read.
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
    /// to one new file, and the old data and delete files leave the table
    /// in one snapshot. Safe while `floe ingest` commits to the same
    /// table: a compaction that loses the race commits on top of the other
    /// commit, or plans again when that commit changed a rewritten row.
    Compact {
        /// `namespace.table`; default: every table in the lake.
        table: Option<String>,
        #[arg(long, default_value_t = 32)]
        small_file_mb: u64,
        #[arg(long, default_value_t = 4)]
        min_small_files: usize,
        #[arg(long, default_value_t = 0.2)]
        max_deleted_ratio: f64,
    },
    /// Expire old snapshots and delete the files only they reached.
    ///
    /// Keeps the current snapshot (which carries the Kafka offsets ingest
    /// resumes from), the newest --retain-last of its history, every
    /// snapshot younger than --older-than, and every snapshot a branch or
    /// tag names. Time travel to an expired snapshot is no longer possible,
    /// and an incremental job whose last source snapshot expired reads its
    /// source whole once.
    Expire {
        /// `namespace.table`; default: every table in the lake.
        table: Option<String>,
        /// Age threshold: `7d`, `12h`, `30m`, `90s`.
        #[arg(long, default_value = "7d", value_parser = parse_age)]
        older_than: std::time::Duration,
        #[arg(long, default_value_t = 10)]
        retain_last: usize,
    },
}

/// `7d`, `12h`, `30m`, `90s` as a duration.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit (d, h, m, s)"))?;
    let seconds = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" | "" => n,
        other => return Err(format!("{text:?}: unknown unit {other:?} (d, h, m, s)")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

pub fn run(args: MaintainArgs) -> Result<()> {
    let lake = crate::config::load_lake(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let lake = Lake::open(&lake).await?;
        match args.command {
            MaintainCommand::Compact {
                table,
                small_file_mb,
                min_small_files,
                max_deleted_ratio,
            } => {
                let policy = CompactPolicy {
                    small_file_bytes: small_file_mb * 1024 * 1024,
                    min_small_files,
                    max_deleted_ratio,
                    ..CompactPolicy::default()
                };
                for ident in tables(&lake, table.as_deref()).await? {
                    let report = compact(&lake, &ident, &policy, args.dry_run)
                        .await
                        .with_context(|| format!("compacting {ident}"))?;
                    let data: usize = report.partitions.iter().map(|p| p.data_files.len()).sum();
                    let deletes: usize =
                        report.partitions.iter().map(|p| p.delete_files.len()).sum();
                    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
                    if report.partitions.is_empty() {
                        println!("{ident}: nothing to compact");
                    } else if args.dry_run {
                        println!(
                            "{ident}: would rewrite {} partitions: {data} data and {deletes} delete files, {:.1} MiB",
                            report.partitions.len(),
                            mib(report.bytes_before)
                        );
                    } else {
                        println!(
                            "{ident}: rewrote {} partitions: {data} data and {deletes} delete files ({:.1} MiB) into {} files ({:.1} MiB), {} rows, {} commit attempt(s)",
                            report.partitions.len(),
                            mib(report.bytes_before),
                            report.files_added,
                            mib(report.bytes_after),
                            report.rows_written,
                            report.attempts
                        );
                    }
                }
            }
            MaintainCommand::Expire {
                table,
                older_than,
                retain_last,
            } => {
                let policy = ExpirePolicy {
                    older_than,
                    retain_last,
                };
                for ident in tables(&lake, table.as_deref()).await? {
                    let report = expire(&lake, &ident, &policy, args.dry_run)
                        .await
                        .with_context(|| format!("expiring {ident}"))?;
                    let (expired, deleted) = if args.dry_run {
                        ("would expire", "would delete")
                    } else {
                        ("expired", "deleted")
                    };
                    println!(
                        "{ident}: {expired} {} snapshots (keeping {}); {deleted} the {} files only they reached",
                        report.expired.len(),
                        report.kept,
                        report.files.len()
                    );
                    if args.dry_run {
                        for f in &report.files {
                            println!("  {f}");
                        }
                    }
                }
            }
        }
        anyhow::Ok(())
    })
}

async fn tables(lake: &Lake, only: Option<&str>) -> Result<Vec<TableIdent>> {
    if let Some(name) = only {
        let (namespace, table) = name
            .split_once('.')
            .with_context(|| format!("{name}: expected namespace.table"))?;
        return Ok(vec![TableIdent::from_strs([namespace, table])?]);
    }
    let mut out = Vec::new();
    for namespace in lake.catalog.list_namespaces(None).await? {
        out.extend(lake.catalog.list_tables(&namespace).await?);
    }
    Ok(out)
}
