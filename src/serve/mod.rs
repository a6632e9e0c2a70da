//! `floe serve`: the lake over HTTP, as JSON, CSV or Arrow IPC.
//!
//! The queries themselves, read-only and limited, are
//! `analytics::serve`'s; this module is the transport: routes, the bearer
//! token, request and body limits, and errors as JSON with the status
//! that says whose fault they were. Connections are capped and each has a
//! bounded lifetime, as on the metrics listener.

use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use analytics::serve::{
    Filter, QueryError, QueryLimits, QueryResult, ReadOnlyQueries, RowsRequest,
};
use analytics::LakeSession;
use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ServeSection;

mod dashboard;
mod flight;
mod svg;
mod tls;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// Time a connection has to send a complete request head. hyper counts
/// a kept-alive connection's idle time against it too, and a client
/// that sends on a connection the server is closing gets an error it
/// cannot retry (a POST): so it outlasts the usual client pool's idle
/// time (reqwest's 90 s), and the connection cap bounds slow clients.
const HEAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a connection is kept: a query's time limit bounds each
/// request, and a keep-alive connection may carry several.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(600);
/// Largest request head read.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest request body read (a SQL statement).
const MAX_BODY_BYTES: usize = 64 * 1024;

const OPENAPI: &str = include_str!("openapi.json");

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The configuration file: its [lake] section says which lake, its
    /// [serve] section how to serve it.
    #[arg(long, env = "FLOE_CONFIG", default_value = "floe.toml")]
    config: PathBuf,

    /// Listen here instead of [serve] listen (`host:port`).
    #[arg(long)]
    listen: Option<String>,

    /// Serve Arrow Flight SQL here instead of [serve] flight_listen.
    #[arg(long)]
    flight_listen: Option<String>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let lake = crate::config::load_lake(&args.config)?;
    let mut settings = crate::config::load_serve(&args.config)?;
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(listen) = args.flight_listen {
        settings.flight_listen = listen;
    }
    // an empty token (an unset variable in docker-compose) is no token
    settings.token = settings.token.filter(|t| !t.is_empty());
    let tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
        (Some(cert), Some(key)) => Some(tls::TlsFiles::read(cert, key)?),
        (None, None) => None,
        _ => bail!("[serve] tls_cert_file and tls_key_file go together: set both or neither"),
    };
    let address = guard(&settings, &settings.listen, "listen")?;
    let flight_address = guard(&settings, &settings.flight_listen, "flight_listen")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let memory = settings.query_memory_mb * settings.max_concurrent_queries * 1024 * 1024;
        let session = LakeSession::open_with_memory_limit(&lake, memory).await?;
        let limits = QueryLimits {
            timeout: Duration::from_secs(settings.query_timeout_secs),
            max_rows: settings.max_rows,
            max_sql_bytes: MAX_BODY_BYTES,
        };
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr().unwrap_or(address);
        let flight = tokio::net::TcpListener::bind(flight_address)
            .await
            .with_context(|| format!("cannot listen for Flight SQL on {flight_address}"))?;
        let flight_bound = flight.local_addr().unwrap_or(flight_address);
        let (http, grpc) = if tls.is_some() {
            ("https", "grpc+tls")
        } else {
            ("http", "grpc")
        };
        eprintln!(
            "floe serve: the dashboard at {http}://{bound}/, the HTTP API under /api (OpenAPI at \
             /api/openapi.json), Flight SQL at {grpc}://{flight_bound}{}",
            if settings.token.is_some() {
                "; every request needs the bearer token"
            } else {
                ""
            }
        );
        let queries = ReadOnlyQueries::new(session, limits);
        let running = Arc::new(Semaphore::new(settings.max_concurrent_queries));
        let flight_service = flight::FlightSqlServer::new(
            queries.clone(),
            settings.token.clone(),
            running.clone(),
            settings.flight_max_rows,
        )
        .context("cannot describe the Flight SQL server")?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &tls {
            builder = builder
                .tls_config(tls.grpc())
                .context("[serve] TLS for Flight SQL")?;
        }
        let flight_server = builder
            .add_service(
                arrow_flight::flight_service_server::FlightServiceServer::new(flight_service)
                    .max_decoding_message_size(MAX_BODY_BYTES * 16),
            )
            .serve_with_incoming(tokio_stream_of(flight));
        let server = Arc::new(Server {
            queries,
            token: settings.token.clone(),
            ingest_metrics: settings.ingest_metrics.clone(),
            running,
        });
        let acceptor = tls.as_ref().map(tls::TlsFiles::http).transpose()?;
        tokio::select! {
            () = accept(listener, server, acceptor) => {}
            result = flight_server => {
                result.context("the Flight SQL server stopped")?;
            }
            _ = tokio::signal::ctrl_c() => eprintln!("floe serve: stopped"),
            () = terminated() => eprintln!("floe serve: stopped"),
        }
        Ok(())
    })
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// The address to listen on, refusing one other machines can reach
/// without a token.
fn guard(settings: &ServeSection, listen: &str, key: &str) -> Result<SocketAddr> {
    let address = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| {
            format!(
                "[serve] {key} = {listen:?} is not an address to listen on: use host:port, e.g. \"127.0.0.1:8080\""
            )
        })?;
    if settings.token.is_none() && !address.ip().is_loopback() {
        bail!(
            "[serve] {key} = {listen:?} is reachable from other machines: set [serve] token \
             (or FLOE__SERVE__TOKEN) so every request must carry it, or listen on 127.0.0.1"
        );
    }
    if let Some(token) = &settings.token {
        if token.len() < 16 {
            bail!("[serve] token is too short: use at least 16 characters");
        }
    }
    Ok(address)
}

struct Server {
    queries: ReadOnlyQueries,
    token: Option<String>,
    ingest_metrics: Option<String>,
    /// Queries running now, over HTTP and Flight SQL together.
    running: Arc<Semaphore>,
}

/// Accepted connections of `listener`, as tonic takes them.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| stream);
        Some((next, listener))
    })
}

async fn accept(
    listener: TcpListener,
    server: Arc<Server>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = server.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, server).await,
                Some(tls) => {
                    // the handshake gets the time a request head gets
                    match tokio::time::timeout(HEAD_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, server).await,
                        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Serves one connection's requests for at most its lifetime.
async fn connection<IO>(io: IO, server: Arc<Server>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(server.answer(request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
}

type Answer = Response<Full<Bytes>>;

impl Server {
    async fn answer(&self, request: Request<Incoming>) -> Answer {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let response = match self.route(request).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        tracing::info!(
            %method,
            %path,
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        response
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Answer, ApiError> {
        let path = request.uri().path().trim_end_matches('/').to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let page = matches!(segments.as_slice(), [] | ["quality"] | ["analytics"]);
        if segments.as_slice() == ["login"] {
            return self.login(request).await;
        }
        if let Err(e) = self.authorize(&request) {
            // a browser asking for a page signs in first
            if page {
                return Ok(redirect("/login"));
            }
            return Err(e);
        }
        let query = Query::parse(request.uri().query().unwrap_or(""))?;
        match (request.method(), segments.as_slice()) {
            (&Method::GET, []) => Ok(html(
                dashboard::health(&self.queries, self.ingest_metrics.as_deref()).await,
            )),
            (&Method::GET, ["quality"]) => Ok(html(dashboard::quality(&self.queries).await)),
            (&Method::GET, ["analytics"]) => Ok(html(dashboard::analytics(&self.queries).await)),
            (&Method::GET, ["api", "health"]) => {
                let now = chrono_now_ms();
                let tables = self.queries.health(now).await?;
                Ok(json(StatusCode::OK, &serde_json::json!({"tables": tables})))
            }
            (&Method::GET, ["api", "openapi.json"]) => Ok(body(
                StatusCode::OK,
                "application/json",
                OPENAPI.as_bytes().to_vec(),
            )),
            (&Method::GET, ["api", "tables"]) => {
                let tables = self.queries.tables().await?;
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({"tables": counts_as_numbers(rows_of(&tables)?)}),
                ))
            }
            (&Method::GET, ["api", "tables", name]) => {
                let (described, snapshots) = self.queries.table(name).await?;
                let columns = described.first().map(rows_of).transpose()?;
                let partition = described.get(1).map(rows_of).transpose()?;
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "table": name,
                        "columns": columns,
                        "partition": partition,
                        "snapshots": rows_of(&snapshots)?,
                    }),
                ))
            }
            (&Method::GET, ["api", "tables", name, "rows"]) => {
                let rows = RowsRequest {
                    columns: query.list("columns"),
                    filters: query
                        .all("filter")
                        .map(|f| f.parse::<Filter>())
                        .collect::<Result<_, _>>()?,
                    order: query.list("order"),
                    limit: query.number("limit")?,
                };
                let _running = self
                    .running
                    .acquire()
                    .await
                    .map_err(|_| ApiError::closing())?;
                let result = self.queries.rows(name, &rows).await?;
                result_response(&result, query.format()?)
            }
            (&Method::GET, ["api", "features", "demand"]) => {
                let zone = query.required_number("zone")?;
                let hour = query.all("hour").last();
                let _running = self
                    .running
                    .acquire()
                    .await
                    .map_err(|_| ApiError::closing())?;
                let result = self.queries.demand_features(zone, hour).await?;
                if result.num_rows() == 0 {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!(
                            "no demand features for zone {zone} at {}",
                            hour.unwrap_or("any hour")
                        ),
                    ));
                }
                result_response(&result, query.format()?)
            }
            (&Method::GET, ["api", "features", "fare"]) => {
                let pickup = query.required_number("pickup_zone")?;
                let dropoff = query.required_number("dropoff_zone")?;
                let Some(time) = query.all("pickup_time").last() else {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "pickup_time is required (YYYY-MM-DD HH:MM, UTC)",
                    ));
                };
                let _running = self
                    .running
                    .acquire()
                    .await
                    .map_err(|_| ApiError::closing())?;
                let result = self.queries.fare_features(pickup, dropoff, time).await?;
                result_response(&result, query.format()?)
            }
            (&Method::GET, ["api", "zones", "activity"]) => {
                let limit = query.number("limit")?.unwrap_or(20);
                let _running = self
                    .running
                    .acquire()
                    .await
                    .map_err(|_| ApiError::closing())?;
                let result = self.queries.zone_activity(limit).await?;
                result_response(&result, query.format()?)
            }
            (&Method::POST, ["api", "sql"]) => {
                let sql = read_body(request).await?;
                let _running = self
                    .running
                    .acquire()
                    .await
                    .map_err(|_| ApiError::closing())?;
                let result = self.queries.sql(&sql).await?;
                result_response(&result, query.format()?)
            }
            (_, ["api", "sql"]) => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST the statement as the request body",
            )),
            (&Method::GET, ["api"]) => Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "floe": "serve",
                    "endpoints": ["/ (the dashboard)", "/api/health", "/api/tables", "/api/tables/{namespace.table}",
                        "/api/tables/{namespace.table}/rows", "/api/sql (POST)",
                        "/api/features/demand", "/api/features/fare", "/api/zones/activity",
                        "/api/openapi.json"],
                }),
            )),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no endpoint {} {path}: see /api/openapi.json",
                    request.method()
                ),
            )),
        }
    }

    /// `GET /login` shows the form; `POST /login` with `token=...` keeps
    /// the token in a cookie the pages are then read with.
    async fn login(&self, request: Request<Incoming>) -> Result<Answer, ApiError> {
        if request.method() != Method::POST {
            return Ok(html(dashboard::login(false)));
        }
        let form = read_body(request).await?;
        let given = Query::parse(&form)?
            .all("token")
            .last()
            .unwrap_or("")
            .to_string();
        match &self.token {
            Some(token) if !same(given.as_bytes(), token.as_bytes()) => {
                let mut page = html(dashboard::login(true));
                *page.status_mut() = StatusCode::UNAUTHORIZED;
                Ok(page)
            }
            _ => {
                let mut response = redirect("/");
                let cookie = format!("{COOKIE_NAME}={given}; HttpOnly; SameSite=Strict; Path=/");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(SET_COOKIE, value);
                }
                Ok(response)
            }
        }
    }

    fn authorize(&self, request: &Request<Incoming>) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let cookie = request
            .headers()
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='));
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or(cookie);
        match given {
            Some(given) if same(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::unauthorized(
                "the bearer token is not the one configured",
            )),
            None => Err(ApiError::unauthorized(
                "send the configured token as `Authorization: Bearer <token>`",
            )),
        }
    }
}

/// The cookie a signed-in browser sends the token in.
const COOKIE_NAME: &str = "floe_token";

fn chrono_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn html(page: String) -> Answer {
    body(
        StatusCode::OK,
        "text/html; charset=utf-8",
        page.into_bytes(),
    )
}

fn redirect(to: &'static str) -> Answer {
    let mut response = body(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Vec::new(),
    );
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    response
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn read_body(request: Request<Incoming>) -> Result<String, ApiError> {
    let collected = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {MAX_BODY_BYTES} bytes"),
            )
        })?;
    String::from_utf8(collected.to_bytes().to_vec())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the statement is not UTF-8"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

/// The request's query string, decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(text: &str) -> Result<Self, ApiError> {
        let pairs = text
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                Ok((decode(k)?, decode(v)?))
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Self(pairs))
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Comma-separated values of every `key`.
    fn list(&self, key: &str) -> Vec<String> {
        self.all(key)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn number(&self, key: &str) -> Result<Option<usize>, ApiError> {
        self.all(key)
            .last()
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("{key}={v:?} is not a count"),
                    )
                })
            })
            .transpose()
    }

    /// A whole number the request must give.
    fn required_number(&self, key: &str) -> Result<i64, ApiError> {
        let value = self
            .all(key)
            .last()
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("{key} is required")))?;
        value.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{key}={value:?} is not a whole number"),
            )
        })
    }

    fn format(&self) -> Result<Format, ApiError> {
        match self.all("format").last().unwrap_or("json") {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "arrow" => Ok(Format::Arrow),
            other => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("format={other:?}: json, csv or arrow"),
            )),
        }
    }
}

/// Percent-decoding of a query string part (`+` is a space).
fn decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "a bad %-escape in the query string",
                        )
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the query string is not UTF-8"))
}

fn result_response(result: &QueryResult, format: Format) -> Result<Answer, ApiError> {
    let mut response = match format {
        Format::Json => json(
            StatusCode::OK,
            &result.to_json().map_err(ApiError::internal)?,
        ),
        Format::Csv => body(
            StatusCode::OK,
            "text/csv; charset=utf-8",
            result.to_csv().map_err(ApiError::internal)?,
        ),
        Format::Arrow => body(
            StatusCode::OK,
            "application/vnd.apache.arrow.stream",
            result.to_arrow_ipc().map_err(ApiError::internal)?,
        ),
    };
    if result.truncated {
        response
            .headers_mut()
            .insert("x-floe-truncated", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `\dt`'s rows are text for the shell; an API gives its counts as
/// numbers.
fn counts_as_numbers(mut rows: serde_json::Value) -> serde_json::Value {
    for row in rows.as_array_mut().into_iter().flatten() {
        for key in ["rows", "data_files", "delete_files", "snapshots"] {
            if let Some(n) = row[key].as_str().and_then(|v| v.parse::<u64>().ok()) {
                row[key] = n.into();
            }
        }
    }
    rows
}

fn rows_of(batch: &analytics::serve::RecordBatch) -> Result<serde_json::Value, ApiError> {
    analytics::serve::json_rows(std::slice::from_ref(batch)).map_err(ApiError::internal)
}

fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
    body(status, "application/json", value.to_string().into_bytes())
}

fn body(status: StatusCode, content_type: &'static str, bytes: Vec<u8>) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An error answered as `{"error": ...}` with its status.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    fn closing() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }

    fn into_response(self) -> Answer {
        let message = crate::secrets::redact(&self.message).into_owned();
        let mut response = json(self.status, &serde_json::json!({"error": message}));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let status = match &e {
            QueryError::BadRequest(_) => StatusCode::BAD_REQUEST,
            QueryError::NotFound(_) => StatusCode::NOT_FOUND,
            QueryError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
            QueryError::OutOfMemory(_) => StatusCode::UNPROCESSABLE_ENTITY,
            QueryError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            QueryError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_lists_split() {
        let q = Query::parse("columns=a,b&columns=c&filter=note%3Aeq%3Aa+b&limit=5").unwrap();
        assert_eq!(q.list("columns"), ["a", "b", "c"]);
        assert_eq!(q.all("filter").collect::<Vec<_>>(), ["note:eq:a b"]);
        assert_eq!(q.number("limit").unwrap(), Some(5));
        assert!(Query::parse("x=%zz").is_err());
        assert!(Query::parse("limit=five").unwrap().number("limit").is_err());
        assert!(Query::parse("format=xml").unwrap().format().is_err());
    }

    #[test]
    fn a_reachable_listener_needs_a_token() {
        let mut s = ServeSection {
            listen: "0.0.0.0:8080".into(),
            ..ServeSection::default()
        };
        let e = guard(&s, &s.listen, "listen").unwrap_err().to_string();
        assert!(e.contains("set [serve] token"), "{e}");
        s.token = Some("short".into());
        assert!(guard(&s, &s.listen, "listen")
            .unwrap_err()
            .to_string()
            .contains("too short"));
        s.token = Some("a-token-of-enough-length".into());
        assert!(guard(&s, &s.listen, "listen").is_ok());
        let local = ServeSection::default();
        assert!(guard(&local, &local.listen, "listen").is_ok());
        assert!(guard(&local, "0.0.0.0:50051", "flight_listen").is_err());
    }

    #[test]
    fn table_counts_are_numbers() {
        let rows = serde_json::json!([{"schema": "s", "rows": "76", "data_files": "1", "last_commit_utc": "2026"}]);
        let rows = counts_as_numbers(rows);
        assert_eq!(rows[0]["rows"], 76);
        assert_eq!(rows[0]["data_files"], 1);
        assert_eq!(rows[0]["schema"], "s");
        assert_eq!(rows[0]["last_commit_utc"], "2026");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
