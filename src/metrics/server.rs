//! The HTTP/1.1 server (hyper) for `/metrics`, `/healthz` and `/readyz`.
//!
//! It must never cost ingest anything, whoever connects: connections are
//! capped (past the cap, new ones wait in the kernel's backlog, so floe's
//! file descriptors stay free for Kafka and the store), each gets a few
//! seconds to send its request and a bounded lifetime, request heads are
//! size-limited and bodies are never read.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Metrics;
use crate::repeats::Repeats;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 128;
/// Time a connection has to send a complete request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest any connection is kept, keep-alive included.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Largest request head read (hyper's smallest buffer).
const MAX_HEAD_BYTES: usize = 8192;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the endpoints on `listen` until the process ends.
pub async fn serve(listen: &str, metrics: Arc<Metrics>) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {listen}"))?;
    tracing::info!(%listen, "serving /metrics, /healthz and /readyz");
    tokio::spawn(accept(listener, metrics));
    Ok(())
}

async fn accept(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let repeats = Repeats::default();
    loop {
        // a slot first: at the cap nothing more is accepted
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // out of file descriptors, say: waiting is the only cure,
                // and retrying at once would spin a core
                let text = format!("metrics listener: cannot accept a connection: {e}");
                if let Some(held) = repeats.note(&text, Instant::now()) {
                    tracing::warn!("{text}{}", crate::repeats::held_back(held));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&metrics, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            // a client that misbehaves only loses its own connection
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

fn answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.render());
            if let Ok(v) = OPENMETRICS.parse() {
                response.headers_mut().insert(CONTENT_TYPE, v);
            }
            response
        }
        "/healthz" => verdict(metrics.unhealthy(), "ok\n"),
        "/readyz" => verdict(metrics.unready(), "ready\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn verdict(problem: Option<String>, fine: &str) -> Response<Full<Bytes>> {
    match problem {
        None => text(StatusCode::OK, fine.into()),
        Some(why) => {
            let mut response = text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
            response
                .headers_mut()
                .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("5"));
            response
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
