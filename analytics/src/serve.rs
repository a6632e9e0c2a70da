//! Read-only queries for `floe serve`: what one request to the HTTP API
//! may run over the lake, and the limits it runs under.
//!
//! This module knows nothing of HTTP (the binary's `src/serve` does): it
//! takes a statement or a table read and gives back Arrow batches, or a
//! [`QueryError`] that says whose fault it was. Every statement is planned
//! read-only (no DDL, no DML, no `SET`), one per request, with a size
//! limit on its text, a time limit on its run and a limit on the rows it
//! returns. Table reads (`rows`) are built here from checked column
//! names and quoted values, never from text pasted into SQL.

use std::time::Duration;

pub use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SQLOptions;
use futures::StreamExt;
use iceberg::TableIdent;

use crate::error::AnalyticsError;
use crate::session::LakeSession;

/// The limits every request runs under.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// A query still running after this long is stopped.
    pub timeout: Duration,
    /// Rows returned at most; a result cut there says so.
    pub max_rows: usize,
    /// Largest statement text accepted.
    pub max_sql_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            max_sql_bytes: 64 * 1024,
        }
    }
}

/// Why a request got no result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request itself is wrong (a client error): bad SQL, a statement
    /// that would change something, an unknown column.
    #[error("{0}")]
    BadRequest(String),
    /// The table named does not exist.
    #[error("no table {0} in the lake")]
    NotFound(String),
    /// The statement text is over the size limit.
    #[error("the statement is {0} bytes; at most {1} are accepted")]
    TooLarge(usize, usize),
    /// The query needed more memory than its limit.
    #[error("the query needs more memory than the server allows it: {0}")]
    OutOfMemory(String),
    /// The query ran past its time limit and was stopped.
    #[error("the query ran past its time limit of {0:?} and was stopped")]
    Timeout(Duration),
    /// The lake or the engine failed (not the client's fault).
    #[error("the query failed: {0}")]
    Failed(String),
}

/// A query's rows, at most [`QueryLimits::max_rows`] of them.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// More rows were there than the limit let through.
    pub truncated: bool,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// `{"columns": [{name, type}], "rows": [{...}], "row_count", "truncated"}`.
    pub fn to_json(&self) -> Result<serde_json::Value, AnalyticsError> {
        let columns: Vec<_> = self
            .schema
            .fields()
            .iter()
            .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
            .collect();
        Ok(serde_json::json!({
            "columns": columns,
            "rows": json_rows(&self.batches)?,
            "row_count": self.num_rows(),
            "truncated": self.truncated,
        }))
    }

    /// CSV with a header line, as `floe sql --format csv` prints it.
    pub fn to_csv(&self) -> Result<Vec<u8>, AnalyticsError> {
        let mut out = Vec::new();
        crate::format::write_batches(
            &mut out,
            &self.schema,
            &self.batches,
            crate::OutputFormat::Csv,
        )?;
        Ok(out)
    }

    /// An Arrow IPC stream.
    pub fn to_arrow_ipc(&self) -> Result<Vec<u8>, AnalyticsError> {
        let mut out = Vec::new();
        let mut writer =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &self.schema)?;
        for batch in &self.batches {
            writer.write(batch)?;
        }
        writer.finish()?;
        drop(writer);
        Ok(out)
    }
}

/// Rows as JSON objects, nulls kept so that every row has every column.
pub fn json_rows(batches: &[RecordBatch]) -> Result<serde_json::Value, AnalyticsError> {
    let mut out = Vec::new();
    let mut writer = datafusion::arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut out);
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    if out.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out).map_err(|e| AnalyticsError::Usage(format!("rows as JSON: {e}")))
}

/// How one table is doing: what the dashboard's health page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableHealth {
    pub namespace: String,
    pub table: String,
    pub live_rows: u64,
    pub data_files: u64,
    pub delete_files: u64,
    /// Rows in the data files that a delete file deletes, of all rows in
    /// them (what a reader reads and throws away).
    pub deleted_row_share: f64,
    pub snapshots: usize,
    /// When the newest commit was made (Unix milliseconds).
    pub last_commit_ms: Option<i64>,
    /// Commits in the hour before `now_ms`, per minute.
    pub commits_per_minute: f64,
    /// Compactions (`replace` commits: `floe maintain compact`, the
    /// scheduler's, ingest's own merges) in the day before `now_ms`, and
    /// when the newest of the snapshots kept was made.
    pub compactions_last_day: usize,
    pub last_compaction_ms: Option<i64>,
}

/// A comparison in a table read: `column op value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub column: String,
    pub op: FilterOp,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl FilterOp {
    fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = QueryError;
    /// `column:op:value`, op one of eq, ne, lt, le, gt, ge.
    fn from_str(s: &str) -> Result<Self, QueryError> {
        let mut parts = s.splitn(3, ':');
        let (Some(column), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(QueryError::BadRequest(format!(
                "filter {s:?}: write column:op:value, op one of eq, ne, lt, le, gt, ge"
            )));
        };
        let op = match op {
            "eq" => FilterOp::Eq,
            "ne" => FilterOp::Ne,
            "lt" => FilterOp::Lt,
            "le" => FilterOp::Le,
            "gt" => FilterOp::Gt,
            "ge" => FilterOp::Ge,
            other => {
                return Err(QueryError::BadRequest(format!(
                    "filter {s:?}: unknown operator {other:?} (eq, ne, lt, le, gt, ge)"
                )))
            }
        };
        Ok(Self {
            column: column.to_string(),
            op,
            value: value.to_string(),
        })
    }
}

/// A read of one table: which columns, which rows, in what order, how many.
#[derive(Debug, Clone, Default)]
pub struct RowsRequest {
    /// Columns to return; all when empty.
    pub columns: Vec<String>,
    pub filters: Vec<Filter>,
    /// Columns to order by, each optionally prefixed with `-` for
    /// descending.
    pub order: Vec<String>,
    pub limit: Option<usize>,
}

/// Read-only access to the lake under [`QueryLimits`]. Clones share the
/// session.
#[derive(Clone)]
pub struct ReadOnlyQueries {
    session: LakeSession,
    limits: QueryLimits,
}

impl ReadOnlyQueries {
    pub fn new(session: LakeSession, limits: QueryLimits) -> Self {
        Self { session, limits }
    }

    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// Runs one read-only SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<QueryResult, QueryError> {
        self.run(sql).await
    }

    /// Plans one read-only statement, with `params` for its `$1`, `$2`...
    /// placeholders when given (a prepared statement), without running it:
    /// the plan's schema is known, and [`DataFrame::execute_stream`] runs it
    /// batch by batch. The caller holds the limits of time and rows on the
    /// stream.
    pub async fn plan(
        &self,
        sql: &str,
        params: Option<Vec<datafusion::scalar::ScalarValue>>,
    ) -> Result<DataFrame, QueryError> {
        if sql.len() > self.limits.max_sql_bytes {
            return Err(QueryError::TooLarge(sql.len(), self.limits.max_sql_bytes));
        }
        let statements = crate::statements::split_script(sql);
        let [statement] = statements.as_slice() else {
            return Err(QueryError::BadRequest(format!(
                "send one statement per request ({} given)",
                statements.len()
            )));
        };
        self.session.refresh().await.map_err(failed)?;
        let frame = self
            .session
            .ctx
            .sql_with_options(statement, read_only())
            .await
            .map_err(planning)?;
        match params {
            Some(values) => frame.with_param_values(values).map_err(planning),
            None => Ok(frame),
        }
    }

    /// The Arrow schemas of the lake's tables, by namespace: what
    /// metadata calls (Flight SQL's GetTables) describe.
    pub async fn table_schemas(&self) -> Result<Vec<(String, String, SchemaRef)>, QueryError> {
        self.session.refresh().await.map_err(failed)?;
        let Some(catalog) = self.session.ctx.catalog(crate::LAKE_CATALOG) else {
            return Ok(Vec::new());
        };
        let mut all = Vec::new();
        let mut namespaces = catalog.schema_names();
        namespaces.sort();
        for namespace in namespaces {
            let Some(schema) = catalog.schema(&namespace) else {
                continue;
            };
            // iceberg-datafusion's `t$snapshots` and `t$manifests` stay
            // queryable, but are not tables to list
            let mut tables: Vec<String> = schema
                .table_names()
                .into_iter()
                .filter(|t| !t.contains('$'))
                .collect();
            tables.sort();
            for table in tables {
                if let Ok(Some(provider)) = schema.table(&table).await {
                    all.push((namespace.clone(), table, provider.schema()));
                }
            }
        }
        Ok(all)
    }

    /// Maps an error of a running plan (see [`Self::plan`]) as a query's.
    pub fn running_error(e: datafusion::error::DataFusionError) -> QueryError {
        running(e)
    }

    /// The lake's tables, as `\dt` lists them.
    pub async fn tables(&self) -> Result<RecordBatch, QueryError> {
        crate::meta::list_tables(self.session.lake.catalog().as_ref())
            .await
            .map_err(failed)
    }

    /// Every table's health, with commits per minute over the hour before
    /// `now_ms`.
    pub async fn health(&self, now_ms: i64) -> Result<Vec<TableHealth>, QueryError> {
        let catalog = self.session.lake.catalog();
        let fail = |e: iceberg::Error| failed(e.into());
        let mut namespaces = catalog.list_namespaces(None).await.map_err(fail)?;
        namespaces.sort_by_key(|n| n.to_url_string());
        let mut all = Vec::new();
        for namespace in namespaces {
            let mut tables = catalog.list_tables(&namespace).await.map_err(fail)?;
            tables.sort_by(|a, b| a.name().cmp(b.name()));
            for ident in tables {
                let table = catalog.load_table(&ident).await.map_err(fail)?;
                let m = table.metadata();
                let files = lakehouse::TableFiles::of(m);
                let hour_ago = now_ms - 3_600_000;
                let recent = m
                    .snapshots()
                    .filter(|s| s.timestamp_ms() > hour_ago && s.timestamp_ms() <= now_ms)
                    .count();
                let replaces: Vec<i64> = m
                    .snapshots()
                    .filter(|s| s.summary().operation == iceberg::spec::Operation::Replace)
                    .map(|s| s.timestamp_ms())
                    .collect();
                all.push(TableHealth {
                    compactions_last_day: replaces
                        .iter()
                        .filter(|&&t| t > now_ms - 86_400_000 && t <= now_ms)
                        .count(),
                    last_compaction_ms: replaces.iter().copied().max(),
                    namespace: namespace.to_url_string(),
                    table: ident.name().to_string(),
                    live_rows: files.live_rows(),
                    data_files: files.data_files,
                    delete_files: files.delete_files,
                    deleted_row_share: files.deleted_share(),
                    snapshots: m.snapshots().count(),
                    last_commit_ms: m.current_snapshot().map(|s| s.timestamp_ms()),
                    commits_per_minute: recent as f64 / 60.0,
                });
            }
        }
        Ok(all)
    }

    /// A table's columns and partition fields (as `\d`), and its snapshots
    /// (as `\snapshots`).
    pub async fn table(&self, name: &str) -> Result<(Vec<RecordBatch>, RecordBatch), QueryError> {
        let ident = self.existing(name).await?;
        let catalog = self.session.lake.catalog();
        let described = crate::meta::describe(catalog.as_ref(), &ident)
            .await
            .map_err(failed)?;
        let snapshots = crate::meta::snapshots(catalog.as_ref(), &ident)
            .await
            .map_err(failed)?;
        Ok((described, snapshots))
    }

    /// Reads rows of table `name`.
    pub async fn rows(&self, name: &str, request: &RowsRequest) -> Result<QueryResult, QueryError> {
        let ident = self.existing(name).await?;
        let table = self
            .session
            .lake
            .catalog()
            .load_table(&ident)
            .await
            .map_err(|e| failed(e.into()))?;
        let known: Vec<String> = table
            .metadata()
            .current_schema()
            .as_struct()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let column = |c: &str| -> Result<String, QueryError> {
            if known.iter().any(|k| k == c) {
                Ok(quote_ident(c))
            } else {
                Err(QueryError::BadRequest(format!(
                    "{name} has no column {c:?} (it has {})",
                    known.join(", ")
                )))
            }
        };
        let select = if request.columns.is_empty() {
            "*".to_string()
        } else {
            request
                .columns
                .iter()
                .map(|c| column(c))
                .collect::<Result<Vec<_>, _>>()?
                .join(", ")
        };
        let mut sql = format!(
            "SELECT {select} FROM {}.{}",
            quote_ident(&ident.namespace().join(".")),
            quote_ident(ident.name())
        );
        if !request.filters.is_empty() {
            let conditions = request
                .filters
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{} {} {}",
                        column(&f.column)?,
                        f.op.sql(),
                        quote_literal(&f.value)
                    ))
                })
                .collect::<Result<Vec<_>, QueryError>>()?;
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if !request.order.is_empty() {
            let keys = request
                .order
                .iter()
                .map(|o| match o.strip_prefix('-') {
                    Some(c) => Ok(format!("{} DESC", column(c)?)),
                    None => Ok(format!("{} ASC", column(o)?)),
                })
                .collect::<Result<Vec<_>, QueryError>>()?;
            sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
        }
        if let Some(limit) = request.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        self.run(&sql).await
    }

    /// The demand features of `zone` for `hour` (`YYYY-MM-DD HH:00`), or
    /// for the newest hour the table has when `hour` is `None`: the row of
    /// `ml.demand_prediction_features` a demand model reads.
    pub async fn demand_features(
        &self,
        zone: i64,
        hour: Option<&str>,
    ) -> Result<QueryResult, QueryError> {
        let when = match hour {
            Some(h) => format!("hour = TIMESTAMP '{}'", timestamp(h)?.format("%Y-%m-%d %H:00:00")),
            None => format!(
                "hour = (SELECT max(hour) FROM ml.demand_prediction_features WHERE zone_id = {zone})"
            ),
        };
        self.run(&format!(
            "SELECT * FROM ml.demand_prediction_features WHERE zone_id = {zone} AND {when}"
        ))
        .await
    }

    /// The features a fare model needs for a trip not yet taken: its time
    /// (hour of day, day of week, as `ml.fare_prediction_features` counts
    /// them), the weather of that hour, and what past trips between the two
    /// zones cost and took.
    pub async fn fare_features(
        &self,
        pickup_zone: i64,
        dropoff_zone: i64,
        pickup_time: &str,
    ) -> Result<QueryResult, QueryError> {
        let at = timestamp(pickup_time)?
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        self.run(&format!(
            "WITH pair AS (\
               SELECT count(*) AS past_trips, avg(fare_amount) AS mean_fare, \
                      avg(trip_distance) AS mean_distance, avg(duration_minutes) AS mean_duration_minutes \
               FROM ml.fare_prediction_features \
               WHERE pickup_zone_id = {pickup_zone} AND dropoff_zone_id = {dropoff_zone}), \
             weather AS (\
               SELECT temperature_c, precipitation_mm, condition AS weather_condition \
               FROM weather.hourly_weather WHERE hour = date_trunc('hour', TIMESTAMP '{at}')) \
             SELECT {pickup_zone} AS pickup_zone_id, {dropoff_zone} AS dropoff_zone_id, \
                    TIMESTAMP '{at}' AS pickup_datetime, \
                    CAST(date_part('hour', TIMESTAMP '{at}') AS INT) AS pickup_hour, \
                    CAST(date_part('dow', TIMESTAMP '{at}') AS INT) AS day_of_week, \
                    weather.temperature_c, weather.precipitation_mm, weather.weather_condition, \
                    pair.past_trips, pair.mean_fare, pair.mean_distance, pair.mean_duration_minutes \
             FROM pair LEFT JOIN weather ON true"
        ))
        .await
    }

    /// The zones of `realtime.zone_activity`'s newest window, most active
    /// first.
    pub async fn zone_activity(&self, limit: usize) -> Result<QueryResult, QueryError> {
        self.run(&format!(
            "SELECT * FROM realtime.zone_activity \
             WHERE window_end = (SELECT max(window_end) FROM realtime.zone_activity) \
             ORDER BY activity_score DESC, pickups DESC, zone_id LIMIT {limit}"
        ))
        .await
    }

    /// `name` as a table that exists, or why not.
    async fn existing(&self, name: &str) -> Result<TableIdent, QueryError> {
        let ident = crate::meta::parse_table(name).map_err(|e| match e {
            AnalyticsError::Usage(m) => QueryError::BadRequest(m),
            other => failed(other),
        })?;
        match self.session.lake.catalog().table_exists(&ident).await {
            Ok(true) => Ok(ident),
            Ok(false) => Err(QueryError::NotFound(name.to_string())),
            Err(e) => Err(failed(e.into())),
        }
    }

    /// Plans `statement` read-only and collects up to the row limit, all
    /// within the time limit (dropping the stream stops the plan).
    async fn run(&self, statement: &str) -> Result<QueryResult, QueryError> {
        let limits = self.limits;
        let work = async {
            let frame = self.plan(statement, None).await?;
            let schema = frame.schema().as_arrow().clone().into();
            let mut stream = frame.execute_stream().await.map_err(planning)?;
            let mut batches = Vec::new();
            let mut rows = 0usize;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(running)?;
                let room = limits.max_rows - rows;
                if batch.num_rows() > room {
                    batches.push(batch.slice(0, room));
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
            }
            Ok(QueryResult {
                schema,
                batches,
                truncated,
            })
        };
        tokio::time::timeout(limits.timeout, work)
            .await
            .unwrap_or(Err(QueryError::Timeout(limits.timeout)))
    }
}

/// A time given as `YYYY-MM-DD HH:MM[:SS]` (or with a `T`), checked
/// before it goes into a statement.
fn timestamp(text: &str) -> Result<chrono::NaiveDateTime, QueryError> {
    let text = text.trim().replace('T', " ");
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(&text, f).ok())
        .ok_or_else(|| {
            QueryError::BadRequest(format!(
                "{text:?} is not a time: write YYYY-MM-DD HH:MM (UTC)"
            ))
        })
}

/// No DDL, no DML (`COPY` included), no `SET`.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn failed(e: AnalyticsError) -> QueryError {
    QueryError::Failed(e.to_string())
}

/// Errors while running are the lake's, except a query that needs more
/// memory than its limit (the client can ask for less).
fn running(e: datafusion::error::DataFusionError) -> QueryError {
    match e.find_root() {
        datafusion::error::DataFusionError::ResourcesExhausted(m) => {
            QueryError::OutOfMemory(first_line(m))
        }
        _ => QueryError::Failed(e.to_string()),
    }
}

/// Errors while planning are the statement's fault (a bad name, a type
/// mismatch, something read-only forbids); errors while running are not.
fn planning(e: datafusion::error::DataFusionError) -> QueryError {
    use datafusion::error::DataFusionError as E;
    match e {
        E::ResourcesExhausted(m) => QueryError::OutOfMemory(first_line(&m)),
        E::ObjectStore(_) | E::IoError(_) | E::External(_) => QueryError::Failed(e.to_string()),
        other => QueryError::BadRequest(first_line(&other.to_string())),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_say_how_to_write_them() {
        let f: Filter = "fare_amount:ge:10.5".parse().unwrap();
        assert_eq!(f.column, "fare_amount");
        assert_eq!(f.op, FilterOp::Ge);
        assert_eq!(f.value, "10.5");
        // the value keeps its colons
        let f: Filter = "note:eq:a:b".parse().unwrap();
        assert_eq!(f.value, "a:b");
        let e = "fare_amount>10".parse::<Filter>().unwrap_err().to_string();
        assert!(e.contains("column:op:value"), "{e}");
        let e = "fare_amount:like:1"
            .parse::<Filter>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown operator"), "{e}");
    }

    #[test]
    fn times_are_checked_before_they_reach_a_statement() {
        assert_eq!(
            timestamp("2024-03-05T08:00").unwrap().to_string(),
            "2024-03-05 08:00:00"
        );
        assert!(timestamp("2024-03-05 08:00:00").is_ok());
        assert!(timestamp("2024-03-05").is_err());
        let e = timestamp("2024-03-05' OR 1=1").unwrap_err().to_string();
        assert!(e.contains("is not a time"), "{e}");
    }

    #[test]
    fn names_and_values_are_quoted_not_pasted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("x' OR '1'='1"), "'x'' OR ''1''=''1'");
    }
}
