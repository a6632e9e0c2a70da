//! The chaos campaign (`scripts/chaos.sh`; a short fixed-seed version runs
//! in CI): the whole stack, a continuous workload on every table, and in
//! each run one fault. After each run the lake must catch up and equal
//! Postgres row for row; lost, duplicated and wrong rows are counted.
//!
//! Fault kinds, one per run (`FLOE_CHAOS_RUNS` runs from
//! `FLOE_CHAOS_SEED`; every kind once in any ten consecutive runs):
//!
//! ```text
//!  floe-kill        kill -9 of floe ingest at a random moment
//!  floe-crash       floe aborts at a crash point (FLOE_CRASH_AT; the
//!                   points are listed in lakehouse::fault)
//!  connect-kill     kill -9 of Kafka Connect (Debezium sends again)
//!  broker-outage    the Kafka listener gone (stack's gate), then back
//!  registry-outage  the registry gone for floe while a column is added
//!  s3-outage        S3 gone for floe
//!  s3-slow          S3 answering each chunk 300 ms late
//!  s3-errors        S3 answering every request with 503
//!  catalog-outage   the Postgres catalog database gone for floe
//!  poison           an undecodable message among the changes (it must
//!                   become exactly one dead letter)
//! ```
//!
//! Outages last `FLOE_CHAOS_OUTAGE_S` seconds (default 8; the full
//! campaign uses 30); the workload runs `FLOE_CHAOS_WORKLOAD_S` (default
//! 10) per run. The summary (markdown) goes to `FLOE_CHAOS_SUMMARY` if set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ingest::testing::Rng;
use lakehouse::Lake;

use crate::ingest::{
    difference_in, lake_rows, lake_rows_in, metrics_port, produce_poison, spawn_floe_env, stop,
    terminate, wait_for, write_config, Ingest, SETUP,
};
use crate::stack::{fresh_dir, text, Stack};

const KINDS: [&str; 10] = [
    "floe-kill",
    "floe-crash",
    "connect-kill",
    "broker-outage",
    "registry-outage",
    "s3-outage",
    "s3-slow",
    "s3-errors",
    "catalog-outage",
    "poison",
];

/// The crash points a `floe ingest` reaches, with the visit to crash on
/// drawn from 1..=3.
const CRASH_POINTS: [&str; 7] = [
    "commit.data-written",
    "commit.written",
    "commit.swapped",
    "merge.rewritten",
    "merge.committed",
    "ingest.committed",
    "dead-letter.written",
];

/// The longest the harness waits for one read of the lake.
const READ_LIMIT: Duration = Duration::from_secs(60);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A TCP gate (scripts/tcp-gate.py): how floe reaches the registry, S3
/// and the catalog database, so each can fail for floe alone.
struct Gate {
    child: Option<std::process::Child>,
    port: u16,
    to: String,
}

impl Gate {
    fn new(to: &str) -> Self {
        let mut gate = Self {
            child: None,
            port: metrics_port(),
            to: to.to_string(),
        };
        gate.open(&[]);
        gate
    }

    /// Opens the gate; `how` adds tcp-gate.py flags (a delay, 503s).
    fn open(&mut self, how: &[&str]) {
        self.close();
        let child = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tcp-gate.py"))
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--to", &self.to])
            .args(how)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for(self.port);
    }

    fn close(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.close();
    }
}

fn host_port(url: &str) -> String {
    url.split("://")
        .last()
        .unwrap_or(url)
        .trim_end_matches('/')
        .to_string()
}

/// `sql` on the source database at `port`.
fn psql(port: &str, sql: &str) {
    let o = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "postgres",
            "-d",
            "taxi",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(o.status.success(), "{sql}: {}", text(&o));
}

/// One round of the workload: inserts, updates (one moving a row to
/// another day, one leaving the TOASTed notes unchanged, one rewriting
/// them), a delete, a primary-key change, and every fifth round a
/// truncate and reload of payment_types and a vendor renamed.
pub(crate) fn workload_round(port: &str, round: u64) {
    let first = 100_000 + round * 10;
    let low = 1 + (round * 7) % 1_900;
    let mut statements = vec![
        format!(
            "INSERT INTO trips SELECT i, 1, timestamp '2024-03-11 00:00' + i * interval '1 second', \
             timestamp '2024-03-11 00:30', 3, 4, 1, 1.0, 8.0, 1.0, 10.0, 1, NULL \
             FROM generate_series({first}, {}) AS i",
            first + 9
        ),
        format!("UPDATE trips SET fare_amount = fare_amount + 1 WHERE trip_id BETWEEN {low} AND {low} + 2"),
        format!("UPDATE trips SET pickup_datetime = pickup_datetime + interval '1 day' WHERE trip_id = {low} + 3"),
        format!("UPDATE trips SET tip_amount = tip_amount + 1 WHERE trip_id = {}", 50 * (1 + round % 39)),
        format!("UPDATE trips SET notes = repeat('chaos {round} ', 400) WHERE trip_id = {low} + 4"),
        format!("DELETE FROM trips WHERE trip_id = {low} + 5"),
        format!("UPDATE trips SET trip_id = trip_id + 1000000 WHERE trip_id = {low} + 6"),
    ];
    if round.is_multiple_of(5) {
        statements.push(
            "TRUNCATE payment_types; \
             INSERT INTO payment_types VALUES (1, 'Credit card'), (2, 'Cash'), (3, 'No charge')"
                .into(),
        );
        statements.push(format!(
            "UPDATE vendors SET name = 'Vendor {round}' WHERE vendor_id = 2"
        ));
    }
    for sql in statements {
        psql(port, &sql);
    }
}

/// Sends a message that is not in the Confluent wire format to the
/// vendors topic.
pub(crate) async fn poison(bootstrap: &str) {
    produce_poison(
        bootstrap,
        "taxi.public.vendors",
        b"not the Confluent wire format",
    )
    .await;
}

/// What one run did and found.
struct RunReport {
    kind: &'static str,
    detail: String,
    recovery: Option<Duration>,
    rows: usize,
    lost: usize,
    duplicated: usize,
    wrong: usize,
    /// floe stopped by itself where it should have waited
    exits: usize,
    /// (dead letters in the table, poison messages sent)
    dead_letters: (usize, usize),
}

struct Campaign {
    dir: PathBuf,
    stack: Stack,
    config: PathBuf,
    registry: Gate,
    s3: Gate,
    catalog: Gate,
    floe: Option<Ingest>,
    log: PathBuf,
    starts: usize,
    /// the lake as the harness reads it: directly, not through the gates
    lake: Lake,
    lake_config: lakehouse::LakeConfig,
    /// reads of the lake by the harness that hung and were given up
    stuck_reads: usize,
    round: u64,
    poisons: usize,
    columns: usize,
}

impl Campaign {
    async fn new() -> Self {
        let dir = fresh_dir("chaos");
        let stack = Stack::up(&dir.join("stack"));
        stack.psql(SETUP);
        stack.psql("CREATE DATABASE floe_catalog");
        let registry = Gate::new(&host_port(&stack.env["SCHEMA_REGISTRY_URL"]));
        let s3 = Gate::new(&host_port(&stack.env["FLOE_S3_ENDPOINT"]));
        let catalog = Gate::new(&format!("127.0.0.1:{}", stack.env["PGPORT"]));

        let direct = dir.join("direct.toml");
        write_config(&direct, &stack, "s3://lake/chaos", &dir.join("unused.db"));
        let written = std::fs::read_to_string(&direct).unwrap();
        let sqlite = format!(
            "type = \"sqlite\"\npath = \"{}\"",
            dir.join("unused.db").display()
        );
        assert!(written.contains(&sqlite), "{written}");
        let postgres = |port: &str| {
            format!(
                "type = \"sql\"\nuri = \"postgres://postgres@127.0.0.1:{port}/floe_catalog?sslmode=disable\""
            )
        };
        let written = written.replace(&sqlite, &postgres(&stack.env["PGPORT"]));
        let lake_config: lakehouse::LakeConfig = {
            let doc: toml::Table = toml::from_str(&written).unwrap();
            doc["lake"].clone().try_into().unwrap()
        };
        let lake = Lake::open(&lake_config).await.unwrap();
        // floe's own: every dependency but Kafka through a gate, and bad
        // messages to the dead-letter table
        let gated = written
            .replace(
                &postgres(&stack.env["PGPORT"]),
                &postgres(&catalog.port.to_string()),
            )
            .replace(
                &stack.env["SCHEMA_REGISTRY_URL"],
                &format!("http://127.0.0.1:{}", registry.port),
            )
            .replace(
                &stack.env["FLOE_S3_ENDPOINT"],
                &format!("http://127.0.0.1:{}", s3.port),
            )
            .replace("[ingest]\n", "[ingest]\non_error = \"dead_letter\"\n");
        assert!(gated.contains("dead_letter") && gated.contains(&s3.port.to_string()));
        let config = dir.join("floe.toml");
        std::fs::write(&config, gated).unwrap();
        let mut campaign = Self {
            log: dir.join("floe-0.log"),
            dir,
            stack,
            config,
            registry,
            s3,
            catalog,
            floe: None,
            starts: 0,
            lake,
            lake_config,
            stuck_reads: 0,
            round: 0,
            poisons: 0,
            columns: 0,
        };
        campaign.start_floe(None);
        let registered = campaign.stack.setup_connectors(&[]);
        assert!(registered.status.success(), "{}", text(&registered));
        campaign
    }

    fn start_floe(&mut self, crash_at: Option<&str>) {
        self.starts += 1;
        self.log = self.dir.join(format!("floe-{}.log", self.starts));
        let env: Vec<(&str, &str)> = crash_at.map(|p| ("FLOE_CRASH_AT", p)).into_iter().collect();
        self.floe = Some(spawn_floe_env(&self.config, &self.log, &env));
    }

    /// Whether floe has exited; started again if so.
    fn restart_if_exited(&mut self) -> bool {
        let exited = self
            .floe
            .as_mut()
            .is_none_or(|f| matches!(f.try_wait(), Ok(Some(_))));
        if exited {
            self.start_floe(None);
        }
        exited
    }

    /// Stops a floe armed with the crash point `armed` (`point@visit`):
    /// a clean exit, or an abort at that point while stopping. Any other
    /// failure fails the campaign.
    fn stop_armed(&mut self, armed: &str) -> &'static str {
        let Some(floe) = self.floe.take() else {
            return "not reached";
        };
        let (status, out) = terminate(floe, &self.log);
        let point = armed.split('@').next().unwrap_or(armed);
        if status.success() {
            "not reached"
        } else if out.contains(&format!("floe: crashing at {point} (FLOE_CRASH_AT)")) {
            "fired while stopping"
        } else {
            panic!("floe ingest armed with {armed} failed on SIGTERM: {out}")
        }
    }

    fn kill_floe(&mut self) {
        if let Some(mut floe) = self.floe.take() {
            let _ = floe.kill();
            let _ = floe.wait();
        }
    }

    fn kill_connect(&self) {
        let pid = std::fs::read_to_string(self.dir.join("stack/connect.pid")).unwrap();
        let killed = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    fn restart_connect(&self) {
        self.stack.service("start", "connect");
        // standalone Connect keeps offsets, not connectors
        let registered = self.stack.setup_connectors(&[]);
        assert!(registered.status.success(), "{}", text(&registered));
    }

    async fn poison(&mut self) {
        poison(&self.stack.env["KAFKA_BOOTSTRAP"]).await;
        self.poisons += 1;
    }

    /// The workload for `seconds`, on its own thread.
    fn workload(&self, seconds: u64) -> std::thread::JoinHandle<u64> {
        let port = self.stack.env["PGPORT"].clone();
        let first = self.round;
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut round = first;
            while started.elapsed() < Duration::from_secs(seconds) {
                workload_round(&port, round);
                round += 1;
            }
            round
        })
    }

    /// Waits until every table equals Postgres, restarting floe when it
    /// stops by itself (counted); false after `limit`.
    async fn caught_up(&mut self, limit: Duration, exits: &mut usize) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let tables = ["vendors", "payment_types", "trips"];
            let read = difference_in(&self.stack, &self.lake, false, &tables);
            let diff = match tokio::time::timeout(READ_LIMIT, read).await {
                Ok(diff) => diff,
                Err(_) => {
                    self.reopen_after_hang().await;
                    Some("the harness's read hung".into())
                }
            };
            if diff.is_none() {
                return true;
            }
            if self.restart_if_exited() {
                *exits += 1;
            }
            if Instant::now() > deadline {
                eprintln!("chaos: not caught up: {diff:?}");
                return false;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Rows compared, and trips lost, duplicated or wrong (resurrected
    /// rows count as wrong), with vendors and payment_types counted as
    /// one wrong row each when they differ.
    async fn compare(&mut self) -> (usize, usize, usize, usize) {
        let columns = "CAST(trip_id AS VARCHAR), CAST(fare_amount AS VARCHAR), \
                       CAST(tip_amount AS VARCHAR), md5(coalesce(notes, ''))";
        let source: BTreeMap<String, String> = self
            .stack
            .query(&format!("SELECT {columns} FROM trips"))
            .into_iter()
            .filter_map(|l| {
                l.split_once('|')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let sql = format!("SELECT {columns} FROM {{t}}");
        // three tries; none answering shows as every row lost
        let mut rows = Vec::new();
        for _ in 0..3 {
            match tokio::time::timeout(READ_LIMIT, lake_rows(&self.lake, "trips", &sql)).await {
                Ok(read) => {
                    rows = read.unwrap_or_default();
                    break;
                }
                Err(_) => self.reopen_after_hang().await,
            }
        }
        let mut lake: BTreeMap<String, String> = BTreeMap::new();
        let mut duplicated = 0;
        for row in &rows {
            let (k, v) = row.split_once('|').unwrap_or((row, ""));
            duplicated += usize::from(lake.insert(k.to_string(), v.to_string()).is_some());
        }
        let lost = source.keys().filter(|k| !lake.contains_key(*k)).count();
        let mut wrong = lake
            .iter()
            .filter(|(k, v)| source.get(*k).is_none_or(|s| s != *v))
            .count();
        for table in ["vendors", "payment_types"] {
            wrong += usize::from(
                difference_in(&self.stack, &self.lake, false, &[table])
                    .await
                    .is_some(),
            );
        }
        (source.len() + 5, lost, duplicated, wrong)
    }

    /// A read of the lake by the harness hung (seen once, after 83 runs
    /// of a campaign, with no socket open): counted, and the lake opened
    /// again.
    async fn reopen_after_hang(&mut self) {
        eprintln!(
            "chaos: a read of the lake by the harness hung for {} s; opening it again",
            READ_LIMIT.as_secs()
        );
        self.stuck_reads += 1;
        self.lake = Lake::open(&self.lake_config).await.unwrap();
    }

    async fn dead_letters(&self) -> usize {
        lake_rows_in(
            &self.lake,
            "floe",
            "dead_letters",
            "SELECT CAST(count(*) AS VARCHAR) FROM {t}",
        )
        .await
        .ok()
        .and_then(|r| r.first().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
    }

    /// One run: the workload with the fault of `kind` in it, then the
    /// catch-up and the comparison.
    async fn run(
        &mut self,
        kind: &'static str,
        rng: &mut Rng,
        outage: Duration,
        seconds: u64,
    ) -> RunReport {
        let mut exits = 0;
        let mut detail = String::new();
        // a crash point is armed from the start of the run
        if kind == "floe-crash" {
            let point = CRASH_POINTS[rng.range(0, CRASH_POINTS.len() as i64) as usize];
            let visit = rng.range(1, 4);
            let armed = format!("{point}@{visit}");
            if let Some(floe) = self.floe.take() {
                stop(floe, &self.log);
            }
            self.start_floe(Some(&armed));
            if point == "dead-letter.written" {
                // one dead-letter write per poison message: as many as
                // the visit to crash on
                for _ in 0..visit {
                    self.poison().await;
                }
            }
            detail = armed;
        }
        let worker = self.workload(seconds);
        let at = rng.range(1_000, (seconds * 500).max(1_500) as i64) as u64;
        tokio::time::sleep(Duration::from_millis(at)).await;
        match kind {
            "floe-kill" => {
                self.kill_floe();
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.start_floe(None);
                detail = format!("at +{:.1} s", at as f64 / 1000.0);
            }
            "connect-kill" => {
                self.kill_connect();
                tokio::time::sleep(Duration::from_secs(2)).await;
                self.restart_connect();
            }
            "broker-outage" => {
                self.stack.service("stop", "kafka");
                tokio::time::sleep(outage).await;
                self.stack.service("start", "kafka");
            }
            "registry-outage" => {
                self.registry.close();
                self.columns += 1;
                psql(
                    &self.stack.env["PGPORT"],
                    &format!(
                        "ALTER TABLE trips ADD COLUMN chaos_{} integer",
                        self.columns
                    ),
                );
                tokio::time::sleep(outage).await;
                self.registry.open(&[]);
                detail = format!("ADD COLUMN chaos_{}", self.columns);
            }
            "s3-outage" => {
                self.s3.close();
                tokio::time::sleep(outage).await;
                self.s3.open(&[]);
            }
            "s3-slow" => {
                self.s3.open(&["--delay-ms", "300"]);
                tokio::time::sleep(outage).await;
                self.s3.open(&[]);
            }
            "s3-errors" => {
                self.s3.open(&["--http-503"]);
                tokio::time::sleep(outage).await;
                self.s3.open(&[]);
            }
            "catalog-outage" => {
                self.catalog.close();
                tokio::time::sleep(outage).await;
                self.catalog.open(&[]);
            }
            "poison" => self.poison().await,
            _ => {}
        }
        self.round = worker.join().unwrap();
        if kind == "floe-crash" {
            // fired: floe aborted and starts again; not reached: floe is
            // stopped and started without the crash point. The point can
            // still be reached while floe stops (a merge that finishes
            // during the shutdown): that is the crash firing too.
            let outcome = if self.restart_if_exited() {
                "fired"
            } else {
                let stopped = self.stop_armed(&detail);
                self.start_floe(None);
                stopped
            };
            detail = format!("{detail} {outcome}");
        } else if self.restart_if_exited() {
            exits += 1;
        }
        let healed = Instant::now();
        let recovered = self.caught_up(Duration::from_secs(180), &mut exits).await;
        let recovery = recovered.then(|| healed.elapsed());
        let (rows, lost, duplicated, wrong) = self.compare().await;
        RunReport {
            kind,
            detail,
            recovery,
            rows,
            lost,
            duplicated,
            wrong,
            exits,
            dead_letters: (self.dead_letters().await, self.poisons),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((last as f64) * p).round() as usize])
}

/// The summary: one line per run, then totals by fault kind.
fn summary(reports: &[RunReport], seed: u64, outage: Duration, stuck_reads: usize) -> String {
    let mut out = format!(
        "seed {seed}, {} runs, outages of {} s\n\n| run | fault | detail | recovery (s) | rows compared | lost | duplicated | wrong | floe stopped by itself | dead letters / poison |\n|---|---|---|---|---|---|---|---|---|---|\n",
        reports.len(),
        outage.as_secs()
    );
    for (i, r) in reports.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |\n",
            i + 1,
            r.kind,
            r.detail,
            r.recovery.map_or("not caught up".into(), |d| format!(
                "{:.1}",
                d.as_secs_f64()
            )),
            r.rows,
            r.lost,
            r.duplicated,
            r.wrong,
            r.exits,
            r.dead_letters.0,
            r.dead_letters.1
        ));
    }
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for r in reports {
        by_kind.entry(r.kind).or_default().extend(r.recovery);
    }
    out.push_str("\n| fault | runs | recovery p50 (s) | p99 (s) |\n|---|---|---|---|\n");
    let secs = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64()));
    for (kind, mut times) in by_kind {
        times.sort();
        let runs = reports.iter().filter(|r| r.kind == kind).count();
        out.push_str(&format!(
            "| {kind} | {runs} | {} | {} |\n",
            secs(percentile(&times, 0.5)),
            secs(percentile(&times, 0.99))
        ));
    }
    let mut all: Vec<Duration> = reports.iter().filter_map(|r| r.recovery).collect();
    all.sort();
    let total = |f: fn(&RunReport) -> usize| reports.iter().map(f).sum::<usize>();
    out.push_str(&format!(
        "\nrows compared {}, lost {}, duplicated {}, wrong {}; recovery p50 {} s, p99 {} s; \
         harness reads that hung and were retried: {stuck_reads}\n",
        total(|r| r.rows),
        total(|r| r.lost),
        total(|r| r.duplicated),
        total(|r| r.wrong),
        secs(percentile(&all, 0.5)),
        secs(percentile(&all, 0.99))
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign() {
    let runs = setting("FLOE_CHAOS_RUNS", 10);
    let seed = setting("FLOE_CHAOS_SEED", 18);
    let outage = Duration::from_secs(setting("FLOE_CHAOS_OUTAGE_S", 8));
    let seconds = setting("FLOE_CHAOS_WORKLOAD_S", 10);
    let mut rng = Rng(seed);
    let mut campaign = Campaign::new().await;
    let mut exits = 0;
    assert!(
        campaign
            .caught_up(Duration::from_secs(180), &mut exits)
            .await,
        "the snapshot never reached the lake"
    );
    let mut reports = Vec::new();
    for run in 0..runs {
        let kind = KINDS[((seed + run) % KINDS.len() as u64) as usize];
        let report = campaign.run(kind, &mut rng, outage, seconds).await;
        eprintln!(
            "chaos run {}: {kind} {}: recovery {:?}, lost {}, duplicated {}, wrong {}",
            run + 1,
            report.detail,
            report.recovery,
            report.lost,
            report.duplicated,
            report.wrong
        );
        reports.push(report);
        // after every run, so a campaign cut short still leaves one
        if let Ok(path) = std::env::var("FLOE_CHAOS_SUMMARY") {
            let text = summary(&reports, seed, outage, campaign.stuck_reads);
            std::fs::write(path, text).unwrap();
        }
    }
    let text = summary(&reports, seed, outage, campaign.stuck_reads);
    eprintln!("{text}");
    for r in &reports {
        assert!(
            r.recovery.is_some() && r.lost == 0 && r.duplicated == 0 && r.wrong == 0,
            "{text}"
        );
        assert_eq!(r.exits, 0, "floe stopped by itself: {text}");
        assert_eq!(
            r.dead_letters.0, r.dead_letters.1,
            "each poison one dead letter: {text}"
        );
    }
    let Campaign { stack, dir, .. } = campaign;
    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}
