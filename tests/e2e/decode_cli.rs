//! `floe decode`, as the README's first command runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn floe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(args)
        .output()
        .expect("floe runs")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debezium")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn line<'a>(out: &'a str, topic: &str, nth: usize) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.starts_with(topic))
        .nth(nth)
        .unwrap_or_else(|| panic!("no line {nth} for {topic} in:\n{out}"))
        .split_whitespace()
        .collect()
}

#[test]
fn decodes_the_bundled_recording() {
    let o = floe(&["decode"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("decoded 35 messages"), "{out}");
    assert!(out.contains("into 8 change batches over 7 topics"), "{out}");
    // topic, schema, rows, c, u, d, r, t, tombstones, offsets
    let trips = line(&out, "taxi.public.trips ", 0);
    assert_eq!(
        &trips[2..10],
        ["7", "1", "3", "1", "2", "0", "1", "p0:0-7"],
        "{out}"
    );
    let trips2 = line(&out, "taxi.public.trips ", 1);
    assert_eq!(
        &trips2[2..10],
        ["2", "1", "1", "0", "0", "0", "0", "p0:8-9"],
        "{out}"
    );
    assert!(trips2.join(" ").contains("schema changed"), "{out}");
    let payment = line(&out, "taxi.public.payment_types", 0);
    assert_eq!(&payment[2..8], ["7", "2", "0", "0", "4", "1"], "{out}");
    assert!(line(&out, "taxi.public.event_log", 0)
        .join(" ")
        .contains("no primary key"));
}

#[test]
fn shows_rows_of_one_topic() {
    let o = floe(&["decode", "--topic", "vendors", "--rows", "4"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("decoded 5 messages"), "{out}");
    assert!(
        out.contains("Creative Mobile Technologies") && out.contains("VeriFone Inc."),
        "{out}"
    );
    assert!(!out.contains("taxi.public.trips"), "{out}");
}

#[test]
fn a_missing_recording_is_a_clear_error() {
    let o = floe(&["decode", "--recording", "/nonexistent/recording"]);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("/nonexistent/recording") && out.contains("recording.jsonl"),
        "{out}"
    );
}

fn copy_fixtures(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["recording.jsonl", "schemas.json"] {
        std::fs::copy(fixtures().join(f), to.join(f)).unwrap();
    }
}

#[test]
fn a_corrupt_message_stops_with_its_position() {
    let dir = std::env::temp_dir().join(format!("floe-e2e-corrupt-{}", std::process::id()));
    copy_fixtures(&dir);
    let path = dir.join("recording.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut out_lines = Vec::new();
    for l in lines {
        let mut v: serde_json::Value = serde_json::from_str(&l).unwrap();
        if v["topic"] == "taxi.public.trips" && v["offset"] == 3 {
            // "AAAAA..." is base64 of the magic byte and id; "QQ" turns the magic byte into 0x41
            let value = v["value"].as_str().unwrap().to_string();
            v["value"] = serde_json::Value::String(format!("QQ{}", &value[2..]));
        }
        out_lines.push(v.to_string());
    }
    std::fs::write(&path, out_lines.join("\n")).unwrap();
    let o = floe(&["decode", "--recording", dir.to_str().unwrap()]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("topic taxi.public.trips partition 0 offset 3"),
        "{out}"
    );
    assert!(out.contains("magic byte"), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}
