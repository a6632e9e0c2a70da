//! The HTTP client floe's S3 storage sends its requests with: hyper's
//! pooled HTTP/1.1 client over TCP connections that acknowledge what they
//! receive at once.
//!
//! Why not the HTTP client OpenDAL brings: on a keep-alive connection
//! Linux delays the ACK of a response segment (40 ms or more) when the
//! connection looks interactive, which a request/response stream does. An
//! S3 server that writes a response's headers and body in two writes and
//! leaves Nagle's algorithm on holds the body until the headers are
//! acknowledged, so each such read waits out the delayed ACK. Garage 2.5
//! is such a server: on this machine a `count(*)` over 1,861 small files
//! took 9.1 s, of which about 40 ms per file was this wait, and 0.9 s with
//! ACKs sent at once (docs/benchmarks.md, "Reads that waited for ACKs").
//! The connections here ask the kernel for quick ACKs (`TCP_QUICKACK`)
//! after every request they send: the flag is not sticky, and sending is
//! what makes the kernel delay ACKs again.
//!
//! Plain `http://` endpoints only (MinIO, Garage and other stores on a
//! private network); `https://` ones keep OpenDAL's client and its TLS.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use http::{Request, Response, Uri};
use http_body::{Frame, SizeHint};
use http_body_util::BodyDataStream;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ingest::error::error_chain;
use opendal::raw::{parse_content_encoding, parse_content_length, HttpBody, HttpClient, HttpFetch};
use opendal::{Buffer, Error, ErrorKind};
use tokio::net::TcpStream;

/// How long an idle pooled connection is kept (reqwest's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The one quick-ACK client of the process: its connection pool outlives
/// the storage handles that use it, as OpenDAL's own client's does.
pub(crate) static QUICK_ACK_CLIENT: LazyLock<HttpClient> = LazyLock::new(|| {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .build(QuickAckConnector(connector));
    HttpClient::with(QuickAckClient(client))
});

/// Asks the kernel to acknowledge what `fd` receives at once, until the
/// connection sends again. A failure only costs latency, so it is ignored.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn quick_ack(fd: i32) {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open TCP socket owned by the caller for the
    // duration of the call; the option value is a c_int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Other systems have no `TCP_QUICKACK`: the connections are plain ones.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn quick_ack(_fd: i32) {}

/// A TCP connection that turns quick ACKs back on after every write.
struct QuickAckStream(TokioIo<TcpStream>);

impl QuickAckStream {
    fn after_write<T>(&self, written: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Ok(_)) = &written {
            quick_ack(self.0.inner().as_raw_fd());
        }
        written
    }
}

impl hyper::rt::Read for QuickAckStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for QuickAckStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write(cx, buf);
        self.after_write(written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
        self.after_write(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}

/// hyper's TCP connector, handing out [`QuickAckStream`]s.
#[derive(Clone)]
struct QuickAckConnector(HttpConnector);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAckStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAckStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { Ok(QuickAckStream(connecting.await?)) })
    }
}

/// A request body of OpenDAL buffers.
struct BufferBody(Buffer);

impl http_body::Body for BufferBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.next().map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.len() as u64)
    }
}

/// OpenDAL's HTTP fetch over the quick-ACK connections.
struct QuickAckClient(Client<QuickAckConnector, BufferBody>);

impl HttpFetch for QuickAckClient {
    async fn fetch(&self, request: Request<Buffer>) -> opendal::Result<Response<HttpBody>> {
        let uri = request.uri().clone();
        let is_head = request.method() == http::Method::HEAD;
        let failed = |message: &'static str, uri: &Uri| {
            let uri = uri.to_string();
            move |e: BoxError| {
                // hyper's own words are only "client error (Connect)": the
                // message carries the whole chain ("tcp connect error:
                // Connection refused"), which is what a user and `floe
                // ingest --check` read. As OpenDAL's own client does, a
                // request or body that fails on the wire is worth another
                // try.
                Error::new(
                    ErrorKind::Unexpected,
                    format!("{message}: {}", error_chain(&*e)),
                )
                .with_operation("floe::QuickAckClient::fetch")
                .with_context("url", uri.clone())
                .set_temporary()
                .set_source(io::Error::other(e))
            }
        };
        let response = self
            .0
            .request(request.map(BufferBody))
            .await
            .map_err(|e| failed("send http request", &uri)(e.into()))?;
        let (mut parts, body) = response.into_parts();
        // a HEAD answer's length is the object's; an encoded body's is not
        // the length read
        let length = if is_head || parse_content_encoding(&parts.headers)?.is_some() {
            None
        } else {
            parse_content_length(&parts.headers)?
        };
        // OpenDAL's services read the request's URI back from here
        parts.extensions.insert(uri.clone());
        let on_error = failed("read data from http response", &uri);
        let data = BodyDataStream::new(body)
            .try_filter(|bytes| std::future::ready(!bytes.is_empty()))
            .map_ok(Buffer::from)
            .map_err(move |e| on_error(e.into()));
        Ok(Response::from_parts(parts, HttpBody::new(data, length)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const BODY: usize = 4096;

    /// A server that answers every request as Garage 2.5 does: the
    /// headers in one write, the body in a second one a moment later,
    /// Nagle's algorithm left on.
    async fn split_writing_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = conn.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            continue;
                        }
                        request.clear();
                        let headers = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n");
                        if conn.write_all(headers.as_bytes()).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        if conn.write_all(&[7u8; BODY]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Seconds for `n` GETs one after another through `client`.
    async fn gets(client: &HttpClient, addr: std::net::SocketAddr, n: usize) -> f64 {
        let started = Instant::now();
        for i in 0..n {
            let request = Request::get(format!("http://{addr}/object-{i}"))
                .body(Buffer::new())
                .unwrap();
            let response = client.send(request).await.unwrap();
            assert_eq!(response.body().len(), BODY);
        }
        started.elapsed().as_secs_f64()
    }

    // Linux's delayed ACKs, and the switch that turns them off
    #[tokio::test]
    async fn a_refused_connection_says_so_and_is_worth_another_try() {
        // a port nothing listens on
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let request = Request::get(format!("http://127.0.0.1:{port}/object"))
            .body(Buffer::new())
            .unwrap();
        let e = QUICK_ACK_CLIENT.send(request).await.unwrap_err();
        assert!(e.is_temporary(), "{e}");
        let shown = e.to_string();
        assert!(shown.contains("tcp connect error"), "{shown}");
        assert!(shown.contains("Connection refused"), "{shown}");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_body_written_after_its_headers_does_not_wait_for_a_delayed_ack() {
        let addr = split_writing_server().await;
        const N: usize = 20;
        // the server reproduces the wait: OpenDAL's own client pays a
        // delayed ACK (tens of ms) on most of the requests
        let default = gets(&HttpClient::default(), addr, N).await;
        assert!(
            default > N as f64 * 0.02,
            "OpenDAL's client took {default:.3} s"
        );
        // floe's does not: 2 ms of server pause per request, and little else
        let quick = gets(&QUICK_ACK_CLIENT, addr, N).await;
        assert!(
            quick < N as f64 * 0.01,
            "the quick-ACK client took {quick:.3} s"
        );
    }
}
