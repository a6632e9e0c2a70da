//! `floe serve` over the quickstart's lake, through a real HTTP client and
//! the ADBC Flight SQL driver (a query, a prepared statement bound twice,
//! metadata, a million rows streamed, the row limit, a cancelled query
//! whose work stops, a wrong token), and over HTTP:
//! every endpoint's values (tables, rows, SQL, the demand and fare
//! features, zone activity) against `floe sql` on the same lake, the three
//! output formats, the bearer token, and bad requests (unknown table and
//! column, DDL, DML, a file-reading function, `SET`, several statements,
//! an oversize body, a query past its time or memory limit, a result past
//! the row limit) answered with a clear 4xx while the server keeps serving;
//! then the dashboard in headless Chromium: signed in through its form,
//! each page free of console errors, its charts drawn and its numbers
//! those of `floe sql`, and a new commit shown after a refresh.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ingest::metrics_port;
use crate::jobs::ok;
use crate::stack::{fresh_dir, repo};

const TOKEN: &str = "serve-test-token-0123456789";

/// `floe serve` on free ports; killed when dropped.
struct Served {
    child: Child,
    base: String,
    flight: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(config: &Path, log: &Path) -> Served {
    serve_with(config, log, false).await
}

/// `floe serve` with `config`, its addresses https and grpc+tls when `tls`.
async fn serve_with(config: &Path, log: &Path, tls: bool) -> Served {
    let port = metrics_port();
    let flight = loop {
        let p = metrics_port();
        if p != port {
            break p;
        }
    };
    let child = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["serve", "--config", &config.display().to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--flight-listen", &format!("127.0.0.1:{flight}")])
        .env("FLOE__SERVE__TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("floe runs");
    let (http, grpc) = if tls {
        ("https", "grpc+tls")
    } else {
        ("http", "grpc")
    };
    let served = Served {
        child,
        base: format!("{http}://127.0.0.1:{port}"),
        flight: format!("{grpc}://127.0.0.1:{flight}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    // up once the port accepts connections (TLS or not)
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "floe serve did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    served
}

/// A request with the token; its status and body.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<String>,
) -> (u16, String) {
    let mut request = client.request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn floe_sql_csv(config: &Path, sql: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["sql", "--config", &config.display().to_string()])
        .args(["--quiet", "--format", "csv", "-e", sql])
        .output()
        .expect("floe runs");
    ok(out)
}

/// The dashboard as headless Chromium sees it (tests/e2e/browse_dashboard.py),
/// a screenshot of each page kept under the build folder's
/// `tmp/dashboard` (`{name}_*.png`).
fn browse(base: &str, name: &str) -> serde_json::Value {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let out = Command::new(crate::types::lake_readers_python())
        .arg(repo().join("tests/e2e/browse_dashboard.py"))
        .args([base, TOKEN])
        .arg(&shots)
        .arg(name)
        .output()
        .expect("python runs");
    let stdout = ok(out);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `floe serve` over the lake of a running `floe ingest` whose config is
/// `config`, its dashboard reading ingest's `/metrics`: the health page
/// shows ingest healthy, its freshness, and its lag per partition.
pub(crate) async fn dashboard_shows_ingest(config: &Path, dir: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let listen = doc["ingest"]["metrics_listen"].as_str().unwrap();
    let with_serve = dir.join("serve.toml");
    std::fs::write(
        &with_serve,
        format!("{text}\n[serve]\ningest_metrics = \"http://{listen}/metrics\"\n"),
    )
    .unwrap();
    let served = serve(&with_serve, &dir.join("serve.log")).await;
    let (status, page) = call(
        &reqwest::Client::new(),
        reqwest::Method::GET,
        &format!("{}/", served.base),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let summary = page
        .split(r#"<p id="ingest-summary">"#)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no ingest section: {page}"));
    assert!(summary.starts_with("healthy · freshness "), "{summary}");
    assert!(!summary.contains("freshness unknown"), "{summary}");
    assert!(summary.contains("consumer lag "), "{summary}");
    // one bar per partition floe consumes, the trips topic's among them
    assert!(page.contains(r#"id="consumer-lag""#), "{page}");
    assert!(page.contains("taxi.public.trips[0]"), "{page}");
}

/// What the ADBC Flight SQL driver sees (tests/e2e/flight_sql_client.py).
fn flight_sql(served: &Served) -> serde_json::Value {
    let out = Command::new(crate::types::lake_readers_python())
        .arg(repo().join("tests/e2e/flight_sql_client.py"))
        .args([served.flight.as_str(), TOKEN])
        .arg(served.child.id().to_string())
        .output()
        .expect("python runs");
    let stdout = ok(out);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn quickstart_lake(dir: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["quickstart", "--dir", &dir.display().to_string()])
        .current_dir(repo())
        .env_remove("FLOE_WEATHER_URL")
        .output()
        .expect("floe runs");
    ok(out);
    dir.join("floe.toml")
}

#[tokio::test]
async fn floe_serve_answers_as_floe_sql_does_and_refuses_what_it_must() {
    let dir = fresh_dir("serve");
    let config = quickstart_lake(&dir.join("lake"));
    // small limits, so that the time and row limits can be reached
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[serve]\nquery_timeout_secs = 2\nmax_rows = 5000\nquery_memory_mb = 32\nmax_concurrent_queries = 2\n\
         flight_max_rows = 1500000\n",
    );
    std::fs::write(&config, text).unwrap();
    let log = dir.join("serve.log");
    let served = serve(&config, &log).await;
    let base = served.base.clone();
    let client = reqwest::Client::new();
    use reqwest::Method;

    // the token: none, a wrong one
    let none = reqwest::get(format!("{base}/api/tables")).await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    assert!(none.text().await.unwrap().contains("Authorization: Bearer"));
    let wrong = client
        .get(format!("{base}/api/tables"))
        .bearer_auth("serve-test-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // the tables, with the row counts floe sql counts
    let (status, body) = call(&client, Method::GET, &format!("{base}/api/tables"), None).await;
    assert_eq!(status, 200, "{body}");
    let tables: serde_json::Value = serde_json::from_str(&body).unwrap();
    let trips = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["schema"] == "taxi_cdc" && t["table"] == "trips")
        .unwrap_or_else(|| panic!("no taxi_cdc.trips in {body}"));
    let count = floe_sql_csv(&config, "SELECT count(*) AS n FROM taxi_cdc.trips");
    assert_eq!(format!("n\n{}\n", trips["rows"].as_u64().unwrap()), count);

    // one table: its key column, partition, and snapshots
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/api/tables/taxi_cdc.trips"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let table: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(table["columns"][0]["column"], "trip_id");
    assert_eq!(table["columns"][0]["key"], "key");
    assert!(!table["snapshots"].as_array().unwrap().is_empty(), "{body}");

    // health: live rows as counted, compactions as the snapshots say
    let (status, body) = call(&client, Method::GET, &format!("{base}/api/health"), None).await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let trips_health = health["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["namespace"] == "taxi_cdc" && t["table"] == "trips")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(format!("n\n{}\n", trips_health["live_rows"]), count);
    let replaces = table["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["operation"] == "replace")
        .count();
    assert_eq!(trips_health["compactions_last_day"], replaces, "{body}");
    assert!(
        replaces > 0,
        "the replay's merges made no replace snapshot: {}",
        table["snapshots"]
    );
    assert_eq!(
        health["tables"].as_array().unwrap().len(),
        tables["tables"].as_array().unwrap().len()
    );

    // the OpenAPI document names every endpoint
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/api/openapi.json"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let openapi: serde_json::Value = serde_json::from_str(&body).unwrap();
    for path in [
        "/api/tables",
        "/api/tables/{table}",
        "/api/tables/{table}/rows",
        "/api/sql",
        "/api/health",
        "/api/features/demand",
        "/api/features/fare",
        "/api/zones/activity",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} not in the OpenAPI document"
        );
    }

    // SQL, in CSV: byte for byte what floe sql prints
    let query = "SELECT payment_type, count(*) AS trips, sum(total_amount) AS revenue \
                 FROM taxi_cdc.trips GROUP BY payment_type ORDER BY payment_type";
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/sql?format=csv"),
        Some(query.into()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, floe_sql_csv(&config, query));

    // a table read with columns, a filter, an order and a limit: the
    // rows of the same query in floe sql
    let (status, body) = call(
        &client,
        Method::GET,
        &format!(
            "{base}/api/tables/taxi_cdc.trips/rows?columns=trip_id,fare_amount\
             &filter=fare_amount:ge:40&filter=payment_type:eq:1&order=-fare_amount,trip_id&limit=7"
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let read: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(read["row_count"], 7, "{body}");
    let as_csv: String = read["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{},{:.2}\n",
                r["trip_id"],
                r["fare_amount"].as_f64().unwrap()
            )
        })
        .collect();
    assert_eq!(
        format!("trip_id,fare_amount\n{as_csv}"),
        floe_sql_csv(
            &config,
            "SELECT trip_id, fare_amount FROM taxi_cdc.trips WHERE fare_amount >= 40 \
             AND payment_type = 1 ORDER BY fare_amount DESC, trip_id LIMIT 7"
        )
    );

    // Arrow IPC: a stream a reader nobody here wrote opens
    let arrow = client
        .post(format!("{base}/api/sql?format=arrow"))
        .bearer_auth(TOKEN)
        .body("SELECT trip_id FROM taxi_cdc.trips WHERE trip_id <= 100")
        .send()
        .await
        .unwrap();
    assert_eq!(
        arrow.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = arrow.bytes().await.unwrap();
    let reader =
        datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    let want = floe_sql_csv(
        &config,
        "SELECT count(*) AS n FROM taxi_cdc.trips WHERE trip_id <= 100",
    );
    assert_eq!(format!("n\n{rows}\n"), want);

    // past the row limit: cut, and said so
    let response = client
        .post(format!("{base}/api/sql"))
        .bearer_auth(TOKEN)
        .body("SELECT * FROM taxi_cdc.trips")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-floe-truncated"], "true");
    let cut: serde_json::Value = response.json().await.unwrap();
    assert_eq!(cut["row_count"], 5000);
    assert_eq!(cut["truncated"], true);

    // the features an application asks for, against floe sql's answers
    let busiest = floe_sql_csv(
        &config,
        "SELECT zone_id, to_char(hour, '%Y-%m-%d %H:%M') AS hour, pickups, pickups_lag_24h \
         FROM ml.demand_prediction_features WHERE pickups > 0 \
         ORDER BY pickups DESC, zone_id, hour LIMIT 1",
    );
    let busiest: Vec<&str> = busiest.lines().nth(1).unwrap().split(',').collect();
    let (status, body) = call(
        &client,
        Method::GET,
        &format!(
            "{base}/api/features/demand?zone={}&hour={}",
            busiest[0],
            busiest[1].replace(' ', "%20")
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let demand: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(demand["row_count"], 1, "{body}");
    // CSV writes a null as nothing
    let shown = |v: &serde_json::Value| v.as_i64().map(|n| n.to_string()).unwrap_or_default();
    assert_eq!(shown(&demand["rows"][0]["pickups"]), busiest[2]);
    assert_eq!(shown(&demand["rows"][0]["pickups_lag_24h"]), busiest[3]);

    let pair = floe_sql_csv(
        &config,
        "SELECT pickup_zone_id, dropoff_zone_id, count(*) AS n, round(avg(fare_amount), 6) AS fare \
         FROM ml.fare_prediction_features GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 1",
    );
    let pair: Vec<&str> = pair.lines().nth(1).unwrap().split(',').collect();
    let weather = floe_sql_csv(
        &config,
        "SELECT temperature_c FROM weather.hourly_weather WHERE hour = TIMESTAMP '2024-03-15 08:00:00'",
    );
    let (status, body) = call(
        &client,
        Method::GET,
        &format!(
            "{base}/api/features/fare?pickup_zone={}&dropoff_zone={}&pickup_time=2024-03-15T08:30",
            pair[0], pair[1]
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let fare: serde_json::Value = serde_json::from_str(&body).unwrap();
    let row = &fare["rows"][0];
    assert_eq!(row["past_trips"].to_string(), pair[2], "{body}");
    let mean: f64 = pair[3].parse().unwrap();
    assert!(
        (row["mean_fare"].as_f64().unwrap() - mean).abs() < 1e-5,
        "{body}"
    );
    assert_eq!(
        (row["pickup_hour"].clone(), row["day_of_week"].clone()),
        (8.into(), 5.into())
    );
    assert_eq!(
        format!("temperature_c\n{}\n", row["temperature_c"]),
        weather,
        "{body}"
    );

    let newest = floe_sql_csv(
        &config,
        "SELECT count(*) AS n, max(activity_score) AS top FROM realtime.zone_activity \
         WHERE window_end = (SELECT max(window_end) FROM realtime.zone_activity)",
    );
    let newest: Vec<&str> = newest.lines().nth(1).unwrap().split(',').collect();
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/api/zones/activity?limit=3"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let activity: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = activity["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        3.min(newest[0].parse::<usize>().unwrap()),
        "{body}"
    );
    assert_eq!(
        rows[0]["activity_score"].as_f64().unwrap(),
        newest[1].parse::<f64>().unwrap()
    );
    assert!(rows
        .windows(2)
        .all(|w| w[0]["window_end"] == w[1]["window_end"]
            && w[0]["activity_score"].as_f64() >= w[1]["activity_score"].as_f64()));

    // bad requests: a clear 4xx each, never a backtrace
    let oversize = format!("SELECT 1 -- {}", "x".repeat(70 * 1024));
    for (method, path, body, status, says) in [
        (
            Method::GET,
            "/api/tables/nope.nope",
            None,
            404,
            "no table nope.nope",
        ),
        (
            Method::GET,
            "/api/tables/trips",
            None,
            400,
            "namespace.table",
        ),
        (
            Method::GET,
            "/api/tables/taxi_cdc.trips/rows?columns=nope",
            None,
            400,
            "no column \\\"nope\\\"",
        ),
        (
            Method::GET,
            "/api/tables/taxi_cdc.trips/rows?filter=fare_amount>3",
            None,
            400,
            "column:op:value",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("DROP TABLE taxi_cdc.trips".to_string()),
            400,
            "DDL not supported",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("DELETE FROM taxi_cdc.trips".to_string()),
            400,
            "not supported",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("COPY (SELECT 1) TO '/tmp/floe-serve-copy.csv'".to_string()),
            400,
            "DML not supported",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'".to_string()),
            400,
            "DDL not supported",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("SELECT * FROM read_csv('/etc/passwd')".to_string()),
            400,
            "read_csv",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("SET datafusion.execution.batch_size = 1".to_string()),
            400,
            "not supported",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("SELECT 1; SELECT 2".to_string()),
            400,
            "one statement",
        ),
        (
            Method::POST,
            "/api/sql",
            Some("SELEC 1".to_string()),
            400,
            "error",
        ),
        (Method::POST, "/api/sql", Some(oversize), 413, "bytes"),
        (
            Method::POST,
            "/api/sql",
            Some("SELECT count(*) FROM range(100000000000)".to_string()),
            408,
            "time limit",
        ),
        (
            Method::POST,
            "/api/sql",
            // 160 MB of values to hold at once; the server gives a query 32 MB
            Some("SELECT array_agg(value) FROM range(20000000)".to_string()),
            422,
            "more memory",
        ),
        (
            Method::GET,
            "/api/features/demand?zone=99999",
            None,
            404,
            "no demand features",
        ),
        (
            Method::GET,
            "/api/features/demand?zone=1&hour=noon",
            None,
            400,
            "is not a time",
        ),
        (
            Method::GET,
            "/api/features/fare?pickup_zone=1",
            None,
            400,
            "dropoff_zone is required",
        ),
        (Method::GET, "/api/sql", None, 405, "POST"),
        (Method::GET, "/etc/passwd", None, 404, "no endpoint"),
        (
            Method::GET,
            "/api/tables/../../etc/passwd",
            None,
            404,
            "no endpoint",
        ),
    ] {
        let started = Instant::now();
        let (got, text) = call(&client, method.clone(), &format!("{base}{path}"), body).await;
        assert_eq!(got, status, "{method} {path}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let message = error["error"].to_string();
        assert!(message.contains(says), "{method} {path}: {message}");
        assert!(!message.contains("panicked"), "{method} {path}: {message}");
        if status == 408 {
            // stopped at its limit, not run to the end
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{:?}",
                started.elapsed()
            );
        }
    }
    assert!(!Path::new("/tmp/floe-serve-copy.csv").exists());

    // still serving
    let (status, _) = call(&client, Method::GET, &format!("{base}/api/tables"), None).await;
    assert_eq!(status, 200);

    // Flight SQL through the ADBC driver
    let flown = flight_sql(&served);
    assert_eq!(
        flown["query"],
        serde_json::json!([19000, "641885.00"]),
        "{flown}"
    );
    assert_eq!(
        floe_sql_csv(
            &config,
            "SELECT count(*) AS trips, sum(total_amount) AS revenue FROM taxi_cdc.trips"
        ),
        "trips,revenue\n19000,641885.00\n"
    );
    let bound = |payment: u32, fare: u32| -> u64 {
        floe_sql_csv(
            &config,
            &format!(
                "SELECT count(*) AS n FROM taxi_cdc.trips WHERE payment_type = {payment} AND fare_amount >= {fare}"
            ),
        )
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
    };
    assert_eq!(
        flown["prepared"],
        serde_json::json!([bound(1, 40), bound(2, 10)]),
        "{flown}"
    );
    assert_eq!(flown["large"]["rows"], 1_000_000, "{flown}");
    assert!(
        flown["large"]["batches"].as_u64().unwrap() > 1,
        "not streamed: {flown}"
    );
    assert!(
        flown["over_limit"]
            .as_str()
            .unwrap()
            .contains("flight_max_rows"),
        "{flown}"
    );
    assert!(
        flown["ddl"].as_str().unwrap().contains("DDL not supported"),
        "{flown}"
    );
    assert_eq!(flown["catalogs"], serde_json::json!(["lake"]));
    let listed: Vec<String> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap(),
                t["table"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(flown["tables"], serde_json::json!(listed), "{flown}");
    assert_eq!(flown["trips_columns"][0], "trip_id");
    assert_eq!(flown["vendor"], "floe");
    let cancelled = flown["cancelled"]["result"].as_str().unwrap();
    assert!(cancelled.contains("CANCELLED"), "{flown}");
    assert!(
        flown["cancelled"]["seconds"].as_f64().unwrap() < 1.8,
        "{flown}"
    );
    assert!(
        flown["cpu_after_cancel"].as_f64().unwrap() < 0.5,
        "the server kept working on a cancelled query: {flown}"
    );
    assert!(
        flown["bad_token"]
            .as_str()
            .unwrap()
            .contains("UNAUTHENTICATED"),
        "{flown}"
    );

    // the dashboard in a real browser: every page without console errors,
    // its charts drawn, its numbers those floe sql computes
    let seen = browse(&base, "before");
    assert_eq!(seen["redirected_to"], "/login", "{seen}");
    for page in ["/", "/quality", "/analytics"] {
        assert_eq!(
            seen[page]["errors"],
            serde_json::json!([]),
            "{page}: {seen}"
        );
        assert!(
            seen[page]["title"].as_str().unwrap().starts_with("floe"),
            "{seen}"
        );
    }
    let charts = seen["/analytics"]["charts"].as_object().unwrap();
    for chart in [
        "trips-per-day",
        "revenue-per-day",
        "top-zones",
        "windows",
        "demand",
        "weather",
    ] {
        assert!(
            charts.get(chart).and_then(|n| n.as_u64()).unwrap_or(0) > 0,
            "{chart} not drawn: {seen}"
        );
    }
    assert!(
        seen["/analytics"]["hover"][0]
            .as_str()
            .unwrap()
            .contains(": "),
        "no numbers on hover: {seen}"
    );
    let shown_trips = seen["/"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "taxi_cdc.trips")
        .unwrap_or_else(|| panic!("no taxi_cdc.trips on the health page: {seen}"))[1]
        .as_str()
        .unwrap()
        .replace(',', "");
    assert_eq!(format!("n\n{shown_trips}\n"), count);
    let per_day: String = seen["/analytics"]["trips_per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{},{}\n", r[0].as_str().unwrap(), r[1].as_str().unwrap()))
        .collect();
    assert_eq!(
        format!("day,trips\n{per_day}"),
        floe_sql_csv(
            &config,
            "SELECT CAST(CAST(pickup_datetime AS DATE) AS VARCHAR) AS day, count(*) AS trips \
             FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"
        )
    );
    let failing = floe_sql_csv(
        &config,
        "SELECT count(*) FILTER (WHERE NOT passed) AS failing, count(*) AS checks \
         FROM quality.check_results \
         WHERE run_id = (SELECT run_id FROM quality.check_results ORDER BY checked_at DESC LIMIT 1)",
    );
    let failing: Vec<&str> = failing.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(
        seen["/quality"]["quality-summary"],
        format!("{} of {} checks failing", failing[0], failing[1]),
        "{seen}"
    );
    // failing checks first
    let results: Vec<String> = seen["/quality"]["quality"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[3].as_str().unwrap().to_string())
        .collect();
    assert!(
        results
            .windows(2)
            .all(|w| !(w[0] == "passed" && w[1] == "FAILED")),
        "{results:?}"
    );

    // a new commit is visible at the next request, and on the next refresh
    let (_, before) = call(
        &client,
        Method::POST,
        &format!("{base}/api/sql?format=csv"),
        Some("SELECT count(*) AS n FROM floe_meta.job_runs".into()),
    )
    .await;
    let run = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["jobs", "run", "zone_activity", "--config"])
        .arg(&config)
        .arg("--jobs-dir")
        .arg(repo().join("analytics/jobs"))
        .current_dir(repo())
        .output()
        .expect("floe runs");
    ok(run);
    let (_, after) = call(
        &client,
        Method::POST,
        &format!("{base}/api/sql?format=csv"),
        Some("SELECT count(*) AS n FROM floe_meta.job_runs".into()),
    )
    .await;
    let n = |csv: &str| -> u64 { csv.lines().nth(1).unwrap().parse().unwrap() };
    assert_eq!(n(&after), n(&before) + 1, "{before} then {after}");
    let again = browse(&base, "after");
    assert_eq!(
        again["/"]["job-summary"],
        format!("0 of the last {} runs did not succeed", n(&after)),
        "{again}"
    );

    drop(served);
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!log.contains(TOKEN), "the token reached the log: {log}");

    // TLS on both ports, with a certificate the clients are told to trust
    crate::ingest::test_ca(&dir, "ca");
    crate::ingest::signed_certificate(&dir, "serve", "subjectAltName=IP:127.0.0.1");
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("serve.pem"),
        dir.join("serve.key"),
    );
    let tls_config = dir.join("tls.toml");
    std::fs::write(
        &tls_config,
        std::fs::read_to_string(&config).unwrap().replace(
            "[serve]\n",
            &format!(
                "[serve]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        ),
    )
    .unwrap();
    let secure = serve_with(&tls_config, &dir.join("tls.log"), true).await;
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let (status, body) = call(
        &trusting,
        Method::GET,
        &format!("{}/api/tables", secure.base),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // plain HTTP to the TLS port gets no answer
    let plain = secure.base.replace("https://", "http://");
    let answered = client
        .get(format!("{plain}/api/tables"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(!answered, "the TLS port answered plain HTTP");
    let over_tls = Command::new(crate::types::lake_readers_python())
        .arg("-c")
        .arg(
            "import sys, adbc_driver_flightsql.dbapi as f\n\
             c = f.connect(sys.argv[1], db_kwargs={'adbc.flight.sql.client_option.tls_root_certs': open(sys.argv[2]).read(),\n\
                 'adbc.flight.sql.authorization_header': 'Bearer ' + sys.argv[3]})\n\
             cur = c.cursor(); cur.execute('SELECT count(*) FROM taxi_cdc.trips'); print(cur.fetchone()[0])",
        )
        .arg(&secure.flight)
        .arg(&ca)
        .arg(TOKEN)
        .output()
        .expect("python runs");
    assert_eq!(ok(over_tls).trim(), "19000");
    drop(secure);
    std::fs::remove_dir_all(&dir).ok();
}
