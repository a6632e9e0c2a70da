//! `floe sql` over a lake built from the recorded Debezium history: `-e`,
//! `-f`, piped statements, every output format, the meta commands, time
//! travel by snapshot id and by time, the read-only guard, and the
//! interactive shell driven through a pseudo-terminal (multi-line input,
//! Ctrl-C cancelling a running query, the history file).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ingest::{ChangeDecoder, Recording};
use lakehouse::apply::TableWriter;
use lakehouse::{Lake, LakeConfig};

use crate::stack::{repo, text};

fn floe_sql(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["sql", "--config", &config.display().to_string()])
        .args(args)
        .output()
        .expect("floe runs")
}

/// `sql` run by `floe sql` with CSV output.
fn csv(config: &Path, sql: &str) -> String {
    stdout(&floe_sql(config, &["--format", "csv", "-e", sql]))
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "floe sql failed: {}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The recording's taxi tables, decoded; the trips batches split in two
/// (before and after the second half of the stream) so a snapshot in the
/// middle exists.
async fn recorded_batches() -> Vec<ingest::ChangeBatch> {
    let recording = Recording::load(&repo().join("tests/fixtures/debezium")).unwrap();
    let mut decoder = ChangeDecoder::new(recording.schemas.clone());
    let mut batches = Vec::new();
    for m in &recording.messages {
        if [
            "taxi.public.trips",
            "taxi.public.vendors",
            "taxi.public.payment_types",
        ]
        .contains(&m.topic.as_str())
        {
            decoder.push(&m.as_raw()).await.unwrap();
            // one batch per message: every change is its own snapshot
            batches.extend(decoder.flush());
        }
    }
    batches
}

async fn build_lake(dir: &Path) -> (Lake, Vec<ingest::ChangeBatch>) {
    let config: LakeConfig = toml::from_str(&format!(
        "warehouse = \"{}\"\n[tables]\n\"public.trips\" = {{ partition = [\"day(pickup_datetime)\"] }}",
        dir.join("lake").display()
    ))
    .unwrap();
    (Lake::open(&config).await.unwrap(), recorded_batches().await)
}

async fn apply(lake: &Lake, writers: &mut Vec<(String, TableWriter)>, batch: &ingest::ChangeBatch) {
    if let Some((_, w)) = writers.iter_mut().find(|(t, _)| *t == batch.topic) {
        w.apply(batch).await.unwrap();
        return;
    }
    let mut w = lake.writer(batch).await.unwrap();
    w.apply(batch).await.unwrap();
    writers.push((batch.topic.clone(), w));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floe_sql_reads_the_lake_now_and_as_it_was() {
    let dir = crate::stack::fresh_dir("sql");
    let config = dir.join("floe.toml");
    std::fs::write(
        &config,
        format!(
            "# only [lake] is read by floe sql\n[lake]\nwarehouse = \"{}\"\n",
            dir.join("lake").display()
        ),
    )
    .unwrap();
    let (lake, batches) = build_lake(&dir).await;
    let half = batches.len() / 2;
    let mut writers = Vec::new();
    for b in &batches[..half] {
        apply(&lake, &mut writers, b).await;
    }
    let state = "SELECT trip_id, fare_amount, pickup_datetime FROM {t} ORDER BY trip_id";
    let now_sql = state.replace("{t}", "taxi_cdc.trips");
    let then = stdout(&floe_sql(&config, &["--format", "csv", "-e", &now_sql]));
    let trips = lake
        .catalog()
        .load_table(&iceberg::TableIdent::from_strs(["taxi_cdc", "trips"]).unwrap())
        .await
        .unwrap();
    let mid_snapshot = trips.metadata().current_snapshot_id().unwrap();
    // the next commit lands at a later millisecond than this time
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mid_time = trips.metadata().current_snapshot().unwrap().timestamp_ms() + 500;
    for b in &batches[half..] {
        apply(&lake, &mut writers, b).await;
    }
    let now = stdout(&floe_sql(&config, &["--format", "csv", "-e", &now_sql]));
    assert_ne!(then, now, "the second half changed trips");

    // time travel, by snapshot id and by time, gives the earlier answer
    let by_id = state.replace("{t}", &format!("as_of('taxi_cdc.trips', {mid_snapshot})"));
    assert_eq!(
        stdout(&floe_sql(&config, &["--format", "csv", "-e", &by_id])),
        then
    );
    let when = datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(mid_time)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string();
    let by_time = state.replace("{t}", &format!("as_of('taxi_cdc.trips', '{when}')"));
    assert_eq!(
        stdout(&floe_sql(&config, &["--format", "csv", "-e", &by_time])),
        then
    );
    let too_early = floe_sql(
        &config,
        &[
            "-e",
            "SELECT * FROM as_of('taxi_cdc.trips', '2001-01-01 00:00:00')",
        ],
    );
    assert!(!too_early.status.success());
    assert!(
        text(&too_early).contains("no snapshot yet at that time"),
        "{}",
        text(&too_early)
    );

    // the final vendors, as the fixture's SQL left them (vendor 2 became 3)
    let vendors = "SELECT vendor_id, name FROM taxi_cdc.vendors ORDER BY vendor_id";
    assert_eq!(
        stdout(&floe_sql(&config, &["--format", "csv", "-e", vendors])),
        "vendor_id,name\n1,Creative Mobile Technologies\n3,VeriFone Inc.\n"
    );
    assert_eq!(
        stdout(&floe_sql(&config, &["--format", "json", "-e", vendors])),
        "{\"vendor_id\":1,\"name\":\"Creative Mobile Technologies\"}\n{\"vendor_id\":3,\"name\":\"VeriFone Inc.\"}\n"
    );
    let table = floe_sql(&config, &["-e", vendors]);
    assert!(
        stdout(&table).contains("| 3         | VeriFone Inc.                |"),
        "{}",
        text(&table)
    );
    assert!(
        text(&table).contains("(2 rows, "),
        "timing line: {}",
        text(&table)
    );

    // meta commands
    let listed = csv(&config, "\\dt");
    assert!(
        listed.starts_with("schema,table,rows,data_files,delete_files,snapshots,last_commit_utc\n"),
        "{listed}"
    );
    for t in ["payment_types", "trips", "vendors"] {
        // rows are what a reader sees, position-deleted ones not counted
        let line = listed
            .lines()
            .find(|l| l.starts_with(&format!("taxi_cdc,{t},")))
            .unwrap_or_else(|| panic!("{t} not listed: {listed}"));
        let cells: Vec<&str> = line.split(',').collect();
        let count = stdout(&floe_sql(
            &config,
            &[
                "--format",
                "csv",
                "-e",
                &format!("SELECT count(*) AS n FROM taxi_cdc.{t}"),
            ],
        ));
        assert_eq!(count, format!("n\n{}\n", cells[2]), "{line}");
        assert!(cells[3].parse::<u64>().unwrap() >= 1, "data files: {line}");
        cells[4].parse::<u64>().unwrap();
    }
    let trips_line = listed
        .lines()
        .find(|l| l.starts_with("taxi_cdc,trips,"))
        .unwrap();
    assert!(
        trips_line
            .split(',')
            .nth(4)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0,
        "the recording updates and deletes trips: {trips_line}"
    );
    let described = stdout(&floe_sql(
        &config,
        &["--format", "csv", "-e", "\\d taxi_cdc.trips"],
    ));
    assert!(
        described.contains("trip_id,long,NOT NULL,key\n"),
        "{described}"
    );
    assert!(
        described.contains("pickup_datetime_day,day(pickup_datetime)\n"),
        "{described}"
    );
    // mistakes get sentences, not debug output, each said once
    let c = config.display().to_string();
    for (args, want) in [
        (
            vec!["sql", "--config", &c, "-e", "SELEC 1"],
            "syntax error: Expected: an SQL statement, found: SELEC",
        ),
        (
            vec!["sql", "--config", &c, "-e", "SELECT count(*) FROM trips"],
            "no table public.trips: did you mean taxi_cdc.trips?",
        ),
        (
            vec!["sql", "--config", &c, "-e", "SELECT * FROM taxi_cdc.nope"],
            "no table taxi_cdc.nope (\\dt lists the tables)",
        ),
        (
            vec![
                "sql",
                "--config",
                &c,
                "-e",
                "SELECT * FROM as_of('taxi_cdc.nope', 1)",
            ],
            "as_of: no table taxi_cdc.nope",
        ),
        (
            vec![
                "maintain",
                "--config",
                &c,
                "compact",
                "taxi_cdc.nope",
                "--dry-run",
            ],
            "no table taxi_cdc.nope in the catalog",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() || stderr.contains("error"),
            "{args:?}"
        );
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        for debug in ["ParserError(", "TableIdent {", "NamespaceIdent("] {
            assert!(!stderr.contains(debug), "{args:?}: {stderr}");
        }
        assert_eq!(stderr.matches(want).count(), 1, "{args:?}: {stderr}");
    }

    // logs written to a pipe carry no colour codes
    let logged = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args([
            "--log",
            "debug",
            "sql",
            "--config",
            &config.display().to_string(),
        ])
        .args(["-e", "SELECT 1"])
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logged.stderr);
    assert!(logged.status.success(), "{logs}");
    assert!(logs.contains("DEBUG"), "{logs}");
    assert!(!logs.contains('\x1b'), "colour codes in a pipe: {logs:?}");

    // a reader that stops early (`| head -1`) ends any command quietly
    let jobs = crate::stack::repo().join("analytics/jobs");
    let j = jobs.display().to_string();
    for args in [
        vec!["sql", "--config", &c, "-e", "SELECT * FROM taxi_cdc.trips"],
        vec!["sql", "--config", &c, "-e", "\\dt"],
        vec!["maintain", "--config", &c, "run", "--dry-run"],
        vec!["jobs", "--config", &c, "--jobs-dir", &j, "list"],
        vec!["decode"],
        vec!["--help"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }

    let snaps = stdout(&floe_sql(
        &config,
        &["--format", "csv", "-e", "\\snapshots taxi_cdc.trips"],
    ));
    assert!(snaps.contains(&format!("{mid_snapshot},")), "{snaps}");
    assert_eq!(snaps.matches(",current").count(), 1, "{snaps}");
    // rows removed by position deletes count as removed, and the current
    // snapshot's live rows are what a reader counts
    assert!(
        snaps.starts_with(
            "snapshot_id,committed_utc,operation,added_rows,added_position_deletes,removed_rows,live_rows,state\n"
        ),
        "{snaps}"
    );
    let cells = |l: &str| l.split(',').map(str::to_string).collect::<Vec<_>>();
    assert!(
        snaps
            .lines()
            .skip(1)
            .map(cells)
            .any(|c| c[4] != "0" && c[5] == c[4]),
        "a snapshot that only position-deletes removes that many rows: {snaps}"
    );
    let current = snaps
        .lines()
        .find(|l| l.ends_with(",current"))
        .map(cells)
        .unwrap();
    let count = stdout(&floe_sql(
        &config,
        &[
            "--format",
            "csv",
            "-e",
            "SELECT count(*) AS n FROM taxi_cdc.trips",
        ],
    ));
    assert_eq!(count, format!("n\n{}\n", current[6]), "{snaps}");

    // a script file with comments, several statements, a meta command
    let script = dir.join("report.sql");
    std::fs::write(
        &script,
        "-- vendors first; then payment types\nSELECT count(*) AS vendors FROM taxi_cdc.vendors;\n\\format json\n\
         SELECT count(*) AS payment_types\n  FROM taxi_cdc.payment_types;",
    )
    .unwrap();
    let out = stdout(&floe_sql(
        &config,
        &["--quiet", "-f", &script.display().to_string()],
    ));
    assert!(out.contains("| 2       |"), "{out}");
    // TRUNCATE then two rows (tests/fixtures/debezium/stream.sql)
    assert!(out.ends_with("{\"payment_types\":2}\n"), "{out}");
    // statements piped in
    let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args([
            "sql",
            "--format",
            "csv",
            "--quiet",
            "--config",
            &config.display().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"SELECT 40 + 2 AS answer;\n").unwrap();
    }
    let piped = child.wait_with_output().unwrap();
    assert_eq!(stdout(&piped), "answer\n42\n");

    // read-only: nothing that would write is planned
    for write in [
        "INSERT INTO taxi_cdc.vendors VALUES (9, 'x')",
        "CREATE TABLE taxi_cdc.x AS SELECT 1",
        "DROP TABLE taxi_cdc.vendors",
    ] {
        let refused = floe_sql(&config, &["-e", write]);
        assert!(!refused.status.success(), "{write}");
        assert!(
            text(&refused).contains("read-only"),
            "{write}: {}",
            text(&refused)
        );
    }
    assert_eq!(
        csv(&config, "SELECT count(*) AS n FROM taxi_cdc.vendors"),
        "n\n2\n"
    );
    // lake tables are read with more files in flight (analytics::scan),
    // a LIMIT given to the scan still holds, and time travel goes the same way
    // and a count(*) reads one narrow column for its row counts, not all
    let plan = csv(&config, "EXPLAIN SELECT count(*) FROM taxi_cdc.trips");
    assert!(plan.contains("WideScan files_at_once:["), "{plan}");
    assert!(plan.contains("rows_from:["), "{plan}");
    // ... and only of files that deletes touch: the others are counted from
    // their manifest entries (the count above, which the position deletes
    // lower, shows the deleted rows are not counted)
    let analyzed = csv(
        &config,
        "EXPLAIN ANALYZE SELECT count(*) FROM taxi_cdc.trips",
    );
    let metric = |name: &str| -> u64 {
        let at = analyzed
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("no {name} in {analyzed}"));
        let digits: String = analyzed[at + name.len() + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    assert!(metric("files_counted") > 0, "{analyzed}");
    assert!(metric("files_read") > 0, "{analyzed}");
    let sums = csv(
        &config,
        "SELECT count(*) AS n, count(trip_id) AS ids FROM taxi_cdc.trips",
    );
    assert_eq!(sums, format!("n,ids\n{0},{0}\n", current[6]), "{analyzed}");
    for limited in [
        "SELECT count(*) AS n FROM (SELECT trip_id FROM taxi_cdc.trips LIMIT 3)",
        "SELECT count(*) AS n FROM (SELECT * FROM taxi_cdc.trips LIMIT 3)",
        // no column: rows counted from the manifests, then limited
        "SELECT count(*) AS n FROM (SELECT 1 FROM taxi_cdc.trips LIMIT 3)",
    ] {
        assert_eq!(csv(&config, limited), "n\n3\n", "{limited}");
    }
    let past = csv(
        &config,
        &format!("EXPLAIN SELECT count(*) FROM as_of('taxi_cdc.trips', {mid_snapshot})"),
    );
    assert!(past.contains("WideScan"), "{past}");
    let unknown = floe_sql(&config, &["-e", "SELECT * FROM taxi_cdc.nope"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("nope"), "{}", text(&unknown));

    interactive_shell(&config, &dir);
    std::fs::remove_dir_all(&dir).ok();
}

/// Drives the interactive shell in a pseudo-terminal (Python's pty): a
/// statement over two lines with a meta command typed in its middle;
/// Ctrl-C during a CPU-bound cross join or unnest, ten times (the shell is back
/// within a second, the query's work has stopped a second later, and the
/// next statement answers at once); two quick Ctrl-Cs; then `\q`. The
/// history file keeps whole statements.
fn interactive_shell(config: &Path, dir: &Path) {
    let history = dir.join("history");
    let driver = r#"
import os, pty, sys, time, select
floe, config, history = sys.argv[1:4]
pid, fd = pty.fork()
if pid == 0:
    os.execv(floe, [floe, "sql", "--config", config, "--history", history])
out = b""
def until(token, seconds=60):
    global out
    end = time.time() + seconds
    while token.encode() not in out:
        if time.time() > end:
            sys.stdout.write(out.decode(errors="replace")); sys.exit("timed out waiting for %r" % token)
        r, _, _ = select.select([fd], [], [], 0.02)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                sys.stdout.write(out.decode(errors="replace")); sys.exit("the shell ended before %r" % token)
    i = out.index(token.encode()) + len(token)
    seen, out = out[:i], out[i:]
    return seen.decode(errors="replace")
def cpu_seconds():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
until("floe> ")
os.write(fd, b"SELECT vendor_id\r")
until("...> ")
os.write(fd, b"\\timing\r")
print(until("...> "))
os.write(fd, b"FROM taxi_cdc.vendors ORDER BY 1;\r")
print(until("floe> "))
os.write(fd, b"\\timing\r")
until("floe> ")
# short enough not to wrap (a wrapped line redraws the prompt)
cross = b"SELECT sum(a.value*b.value) FROM range(20000) a, range(20000) b;\r"
# slow per batch above the leaf: 128 batches of tokio's budget were 28 s
lists = b"SELECT count(*) FROM (SELECT unnest(range(1000)) FROM range(9000000));\r"
def running(statement, seconds):
    # Ctrl-C must find the statement running: typed while the line editor
    # still has the terminal in raw mode (a loaded machine can hold it there
    # past a fixed sleep), it is a key press for the next prompt instead
    start = cpu_seconds()
    os.write(fd, statement)
    time.sleep(seconds)
    end = time.time() + 60
    while cpu_seconds() - start < 0.5:
        if time.time() > end:
            sys.stdout.write(out.decode(errors="replace")); sys.exit("the statement never ran: %r" % statement)
        time.sleep(0.05)
for attempt in range(10):
    running(cross if attempt % 2 == 0 else lists, 1.0 + attempt * 0.1)
    sent = time.time()
    os.write(fd, b"\x03")
    print(until("error: cancelled"))
    back = time.time() - sent
    print(until("floe> "))
    time.sleep(max(0.0, 1.0 - back))
    before = cpu_seconds(); time.sleep(1.0); after = cpu_seconds()
    asked = time.time()
    os.write(fd, b"SELECT 7 * 6 AS answer;\r")
    print(until("| 42"))
    print("CANCEL %d back=%.2f busy=%.2f next=%.2f" % (attempt, back, after - before, time.time() - asked))
    print(until("floe> "))
running(cross, 1.0)
os.write(fd, b"\x03")
time.sleep(0.01)
os.write(fd, b"\x03")
print(until("error: "))
print(until("floe> "))
# the second Ctrl-C may reach the line editor after this prompt (it then
# draws another): a statement typed meanwhile is dropped with the line it
# interrupts (CI-J at stop 34), so the shell is given a second to settle
time.sleep(1.0)
while select.select([fd], [], [], 0.1)[0]:
    out += os.read(fd, 65536)
sys.stdout.write(out.decode(errors="replace"))
out = b""
os.write(fd, b"SELECT 6 * 7 AS again;\r")
print(until("| 42"))
print(until("floe> "))
os.write(fd, b"\\q\r")
for _ in range(100):
    if os.waitpid(pid, os.WNOHANG)[0] == pid:
        break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    sys.exit("the shell did not quit")
"#;
    let o = Command::new("python3")
        .args(["-c", driver, env!("CARGO_BIN_EXE_floe")])
        .arg(config)
        .arg(&history)
        .output()
        .expect("python3 runs");
    let out = text(&o);
    // the driver's reason first: a long transcript is cut in the middle
    let reason = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{reason}\n{out}");
    assert!(
        out.contains("| 3         |"),
        "the two-line statement ran: {out}"
    );
    assert!(
        out.contains("timing off"),
        "the meta command inside it ran: {out}"
    );
    for line in out.lines().filter(|l| l.starts_with("CANCEL ")) {
        eprintln!("{line}");
        let figure = |name: &str| -> f64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::MAX)
        };
        // back within a second; its work stopped (a core busy for a
        // second is 1.0); the next statement is not queued behind it (it
        // waited 20 s for the old cross join; other tests running beside
        // this one can slow a plain statement to a second or two)
        // (0.01-0.14 s on an idle machine, debug build)
        assert!(figure("back=") < 1.0, "{line}\n{out}");
        assert!(figure("busy=") < 0.3, "{line}\n{out}");
        assert!(figure("next=") < 3.0, "{line}\n{out}");
    }
    assert_eq!(out.matches("CANCEL ").count(), 10, "{out}");
    assert!(
        out.contains("cancelled"),
        "Ctrl-C cancelled the query: {out}"
    );
    assert!(
        out.contains("| 42") && out.contains("again"),
        "the shell went on after Ctrl-C: {out}"
    );
    let kept = std::fs::read_to_string(&history).unwrap_or_default();
    assert!(kept.contains("SELECT 7 * 6 AS answer;"), "history: {kept}");
    // the two-line statement is one entry (rustyline escapes the newline)
    assert!(
        kept.lines()
            .any(|l| l.contains("SELECT vendor_id") && l.contains("FROM taxi_cdc.vendors")),
        "history: {kept}"
    );
}
