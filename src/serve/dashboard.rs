//! The dashboard at `/`: pipeline health, data quality and the taxi
//! analytics, as HTML with inline SVG charts rendered here, each chart's
//! numbers in a table below it. Pages refresh themselves every 30 s and
//! read the lake's newest commits each time.

use std::fmt::Write;

use analytics::serve::{QueryResult, ReadOnlyQueries, TableHealth};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::svg::{self, esc, number};

/// Refresh interval of every page, seconds.
const REFRESH_SECS: u32 = 30;

/// Rows of a result as text, with its column names.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Rows {
    fn of(result: &QueryResult) -> Self {
        let columns = result
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let options = FormatOptions::default().with_null("");
        let mut rows = Vec::new();
        for batch in &result.batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
                .collect();
            for i in 0..batch.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
            }
        }
        Self { columns, rows }
    }

    /// `(label column, value column)` pairs for a chart.
    fn points(&self, label: usize, value: usize) -> Vec<(String, f64)> {
        self.rows
            .iter()
            .map(|r| {
                (
                    r.get(label).cloned().unwrap_or_default(),
                    r.get(value).and_then(|v| v.parse().ok()).unwrap_or(0.0),
                )
            })
            .collect()
    }

    fn table(&self, id: &str) -> String {
        let mut out = format!(r#"<table id="{}"><thead><tr>"#, esc(id));
        for c in &self.columns {
            let _ = write!(out, "<th>{}</th>", esc(c));
        }
        out.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            out.push_str("<tr>");
            for v in r {
                let _ = write!(out, "<td>{}</td>", esc(v));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }
}

/// A section: a query's chart and its numbers, or why there is none.
async fn section(
    queries: &ReadOnlyQueries,
    title: &str,
    id: &str,
    sql: &str,
    chart: impl FnOnce(&Rows) -> String,
) -> String {
    let mut out = format!(r#"<section><h2>{}</h2>"#, esc(title));
    match queries.sql(sql).await {
        Ok(result) if result.num_rows() > 0 => {
            let rows = Rows::of(&result);
            out.push_str(&chart(&rows));
            let _ = write!(
                out,
                "<details><summary>the numbers</summary>{}</details>",
                rows.table(&format!("{id}-numbers"))
            );
        }
        Ok(_) => out.push_str(r#"<p class="empty">no rows yet</p>"#),
        Err(e) => {
            let _ = write!(
                out,
                r#"<p class="empty">not available: {}</p>"#,
                esc(&e.to_string())
            );
        }
    }
    out.push_str("</section>");
    out
}

fn page(title: &str, active: &str, body: &str) -> String {
    let nav: String = [
        ("/", "Pipeline health"),
        ("/quality", "Data quality"),
        ("/analytics", "Taxi analytics"),
    ]
    .iter()
    .map(|(href, name)| {
        format!(
            r#"<a href="{href}"{}>{name}</a>"#,
            if *href == active {
                r#" class="active""#
            } else {
                ""
            }
        )
    })
    .collect();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><meta http-equiv="refresh" content="{REFRESH_SECS}"><title>floe · {t}</title><style>{STYLE}</style></head><body><header><strong>floe</strong><nav>{nav}</nav><span class="when">refreshed {now} UTC, every {REFRESH_SECS} s</span></header><main><h1>{t}</h1>{body}</main></body></html>"#,
        t = esc(title),
        now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"),
    )
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222}header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1d3557;color:#fff}header a{color:#cfe0f5;text-decoration:none;margin-right:1em}header a.active{color:#fff;font-weight:600}.when{margin-left:auto;font-size:12px;opacity:.8}main{padding:0 1.2em 2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}.chart{width:100%;max-width:760px;color:#1d3557}.chart .mark{fill:#457b9d}.chart circle.mark{fill:#1d3557}.chart .tick{font-size:10px;fill:#555}.bad{color:#b00020;font-weight:600}.warn{color:#a05a00}.empty{color:#777}section{margin-top:1.5em}";

/// `/`: every table's health (its maintenance read from its `replace`
/// snapshots, since maintenance keeps no log table), ingest's lag when
/// known, the job runs.
pub async fn health(queries: &ReadOnlyQueries, ingest: Option<&str>) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let mut body = String::from("<section><h2>Tables</h2>");
    match queries.health(now).await {
        Ok(tables) => {
            body.push_str(&health_table(&tables, now));
            let commits: Vec<(String, f64)> = tables
                .iter()
                .map(|t| (format!("{}.{}", t.namespace, t.table), t.commits_per_minute))
                .collect();
            body.push_str("<h2>Commits per minute, last hour</h2>");
            body.push_str(&svg::ranking("commits-per-minute", &commits, "commits/min"));
        }
        Err(e) => {
            let _ = write!(
                body,
                r#"<p class="bad">the lake cannot be read: {}</p>"#,
                esc(&e.to_string())
            );
        }
    }
    body.push_str("</section>");
    if let Some(url) = ingest {
        body.push_str(&ingest_section(url).await);
    }
    body.push_str(
        &section(
            queries,
            "Job runs",
            "job-runs",
            "SELECT job, status, started_at, finished_at, rows_written FROM floe_meta.job_runs \
             ORDER BY started_at DESC LIMIT 25",
            |rows| {
                let failed = rows
                    .rows
                    .iter()
                    .filter(|r| r.get(1).is_some_and(|s| s != "succeeded"))
                    .count();
                format!(
                    r#"<p id="job-summary">{} of the last {} runs did not succeed</p>"#,
                    failed,
                    rows.rows.len()
                )
            },
        )
        .await,
    );
    page("Pipeline health", "/", &body)
}

fn health_table(tables: &[TableHealth], now: i64) -> String {
    let mut out = String::from(
        r#"<table id="tables"><thead><tr><th>table</th><th>live rows</th><th>last commit (UTC)</th><th>age</th><th>commits/min (1 h)</th><th>data files</th><th>delete files</th><th>deleted rows</th><th>compactions (24 h)</th><th>last compaction</th></tr></thead><tbody>"#,
    );
    for t in tables {
        let (when, commit_age) = match t.last_commit_ms {
            Some(ms) => (
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                age(now - ms),
            ),
            None => (String::new(), "never".into()),
        };
        let share = t.deleted_row_share * 100.0;
        let _ = write!(
            out,
            r#"<tr data-table="{ns}.{name}"><td>{ns}.{name}</td><td class="rows">{rows}</td><td>{when}</td><td>{commit_age}</td><td>{cpm:.2}</td><td class="data-files">{df}</td><td class="delete-files">{xf}</td><td{cls}>{share:.1}%</td><td class="compactions">{compactions}</td><td>{compacted}</td></tr>"#,
            ns = esc(&t.namespace),
            name = esc(&t.table),
            rows = number(t.live_rows as f64),
            cpm = t.commits_per_minute,
            df = t.data_files,
            xf = t.delete_files,
            cls = if share > 10.0 { r#" class="warn""# } else { "" },
            compactions = t.compactions_last_day,
            compacted = t
                .last_compaction_ms
                .map_or("never".into(), |ms| format!("{} ago", age(now - ms))),
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// Ingest's own metrics: lag per partition and freshness, from its
/// `/metrics` endpoint.
async fn ingest_section(url: &str) -> String {
    let mut out = String::from("<section><h2>Ingest</h2>");
    let text = match fetch(url).await {
        Ok(text) => text,
        Err(e) => {
            let _ = write!(
                out,
                r#"<p class="bad">ingest's metrics at {} do not answer: {}</p></section>"#,
                esc(url),
                esc(&e)
            );
            return out;
        }
    };
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    // `floe_consumer_lag{topic="t",partition="p"} n` as ("t[p]", n)
    let label = |labels: &str, key: &str| -> Option<String> {
        let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
        Some(labels[start..].split('"').next()?.to_string())
    };
    let lag: Vec<(String, f64)> = text
        .lines()
        .filter(|l| l.starts_with("floe_consumer_lag{"))
        .filter_map(|l| {
            let labels = l.split_once('{')?.1.split('}').next()?;
            let name = format!(
                "{}[{}]",
                label(labels, "topic")?,
                label(labels, "partition")?
            );
            Some((name, value(l)?))
        })
        .collect();
    let freshness = text
        .lines()
        .find(|l| l.starts_with("floe_freshness_seconds "))
        .and_then(value);
    let healthy = text
        .lines()
        .find(|l| l.starts_with("floe_healthy "))
        .and_then(value);
    let _ = write!(
        out,
        r#"<p id="ingest-summary">{} · freshness {} · consumer lag {} messages</p>"#,
        match healthy {
            Some(h) if h >= 1.0 => "healthy".to_string(),
            Some(_) => r#"<span class="bad">unhealthy</span>"#.to_string(),
            None => "health unknown".to_string(),
        },
        freshness.map_or("unknown".into(), |f| format!("{f:.2} s")),
        number(lag.iter().map(|l| l.1).sum()),
    );
    if !lag.is_empty() {
        out.push_str(&svg::ranking("consumer-lag", &lag, "messages behind"));
    }
    out.push_str("</section>");
    out
}

async fn fetch(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

/// `/quality`: the newest data-quality run, failing checks first.
pub async fn quality(queries: &ReadOnlyQueries) -> String {
    let body = section(
        queries,
        "The newest check run",
        "checks",
        "SELECT check_name, table_name, severity, passed, failed_count, sample_keys, checked_at \
         FROM quality.check_results \
         WHERE run_id = (SELECT run_id FROM quality.check_results ORDER BY checked_at DESC LIMIT 1) \
         ORDER BY passed, severity = 'error' DESC, check_name",
        |rows| {
            let mut out = String::from(
                r#"<table id="quality"><thead><tr><th>check</th><th>table</th><th>severity</th><th>result</th><th>failed rows</th><th>sample keys</th></tr></thead><tbody>"#,
            );
            let mut failing = 0;
            for r in &rows.rows {
                let passed = r.get(3).is_some_and(|p| p == "true");
                let class = match (passed, r.get(2).map(String::as_str)) {
                    (true, _) => "",
                    (false, Some("error")) => " class=\"bad\"",
                    (false, _) => " class=\"warn\"",
                };
                failing += usize::from(!passed);
                let _ = write!(
                    out,
                    "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&r[0]),
                    esc(&r[1]),
                    esc(&r[2]),
                    if passed { "passed" } else { "FAILED" },
                    esc(&r[4]),
                    esc(&r[5]),
                );
            }
            out.push_str("</tbody></table>");
            format!(
                r#"<p id="quality-summary">{failing} of {} checks failing</p>{out}"#,
                rows.rows.len()
            )
        },
    )
    .await;
    page("Data quality", "/quality", &body)
}

/// `/analytics`: the taxi charts.
pub async fn analytics(queries: &ReadOnlyQueries) -> String {
    let mut body = String::new();
    body.push_str(
        &section(
            queries,
            "Trips per day",
            "trips-per-day",
            "SELECT CAST(CAST(pickup_datetime AS DATE) AS VARCHAR) AS day, count(*) AS trips, \
             sum(total_amount) AS revenue FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1",
            |rows| svg::bars("trips-per-day", &rows.points(0, 1), "trips"),
        )
        .await,
    );
    body.push_str(
        &section(
            queries,
            "Revenue per day",
            "revenue-per-day",
            "SELECT CAST(CAST(pickup_datetime AS DATE) AS VARCHAR) AS day, sum(total_amount) AS revenue \
             FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1",
            |rows| svg::bars("revenue-per-day", &rows.points(0, 1), "$"),
        )
        .await,
    );
    body.push_str(
        &section(
            queries,
            "Top zones by pickups",
            "top-zones",
            "SELECT zone, sum(pickups) AS pickups, sum(revenue) AS revenue \
             FROM analytics.zone_performance_metrics GROUP BY zone ORDER BY 2 DESC, 1 LIMIT 10",
            |rows| svg::ranking("top-zones", &rows.points(0, 1), "pickups"),
        )
        .await,
    );
    body.push_str(
        &section(
            queries,
            "5-minute windows, last day",
            "windows",
            "SELECT CAST(window_start AS VARCHAR) AS window_start, trips, revenue \
             FROM realtime.trip_aggregations \
             WHERE window_start > (SELECT max(window_start) FROM realtime.trip_aggregations) - INTERVAL '1 day' \
             ORDER BY window_start",
            |rows| svg::line("windows", &rows.points(0, 1), "trips"),
        )
        .await,
    );
    body.push_str(
        &section(
            queries,
            "Demand by hour of week (mean pickups per zone and hour)",
            "demand",
            "SELECT day_of_week, hour_of_day, avg(pickups) AS mean_pickups \
             FROM ml.demand_prediction_features GROUP BY 1, 2 ORDER BY 1, 2",
            |rows| {
                let days: Vec<String> = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
                    .iter()
                    .map(|d| d.to_string())
                    .collect();
                let cells: Vec<(usize, usize, f64)> = rows
                    .rows
                    .iter()
                    .filter_map(|r| {
                        Some((r[0].parse().ok()?, r[1].parse().ok()?, r[2].parse().ok()?))
                    })
                    .collect();
                svg::heatmap("demand", &days, 24, &cells, "pickups")
            },
        )
        .await,
    );
    body.push_str(
        &section(
            queries,
            "Trips and weather: mean trips per hour by condition",
            "weather",
            "SELECT condition, round(sum(trips) / sum(hours), 2) AS trips_per_hour, \
             round(avg(avg_fare), 2) AS mean_fare, round(avg(temperature_trips_correlation), 3) AS temperature_correlation \
             FROM analytics.trip_weather_correlation GROUP BY condition ORDER BY 2 DESC",
            |rows| svg::ranking("weather", &rows.points(0, 1), "trips per hour"),
        )
        .await,
    );
    page("Taxi analytics", "/analytics", &body)
}

/// `/login`: where a browser gives the token once (kept in a cookie).
pub fn login(wrong: bool) -> String {
    let note = if wrong {
        r#"<p class="bad">that is not the configured token</p>"#
    } else {
        ""
    };
    page(
        "Sign in",
        "",
        &format!(
            r#"{note}<form method="post" action="/login"><label>Token <input type="password" name="token" autofocus></label> <button>Open the dashboard</button></form>"#
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_unit_that_fits() {
        assert_eq!(age(5_000), "5 s");
        assert_eq!(age(600_000), "10 min");
        assert_eq!(age(3 * 3_600_000), "3 h");
        assert_eq!(age(3 * 86_400_000), "3 days");
    }
}
