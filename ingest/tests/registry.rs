//! The schema registry client over real HTTP, against the registry test
//! stand-in (`scripts/schema-registry-standin.py`, the same server the
//! Debezium Java client registered the fixture schemas with).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ingest::{
    ChangeDecoder, DecodeErrorKind, Recording, RegistryConfig, RegistryError, SchemaRegistryClient,
};

use crate::fixtures::fixture_dir;

fn standin_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/schema-registry-standin.py")
}

/// A running stand-in serving the fixture schemas; killed on drop.
struct StandIn {
    child: Child,
    url: String,
}

impl StandIn {
    fn start(port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(standin_script())
            .args(["--port", &port.to_string(), "--load"])
            .arg(fixture_dir().join("schemas.json"))
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the registry stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(url.starts_with("http"), "stand-in did not start: {line:?}");
        Self { child, url }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fast(url: &str, attempts: u32) -> RegistryConfig {
    RegistryConfig {
        max_attempts: attempts,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        request_timeout: Duration::from_secs(5),
        ..RegistryConfig::new(url)
    }
}

fn trips_value_id(rec: &Recording) -> u32 {
    rec.schemas.subject_versions("taxi.public.trips-value")[0]
}

#[tokio::test]
async fn fetches_by_id_and_keeps_it_cached() {
    let rec = Recording::load(&fixture_dir()).unwrap();
    let id = trips_value_id(&rec);
    let standin = StandIn::start(0, &[]);
    let client = SchemaRegistryClient::new(fast(&standin.url, 2)).unwrap();
    let schema = client.schema_by_id(id).await.unwrap();
    assert_eq!(&*schema, &**rec.schemas.get(id).unwrap());
    drop(standin);
    let again = client
        .schema_by_id(id)
        .await
        .expect("served from cache with the registry gone");
    assert_eq!(again, schema);
}

#[tokio::test]
async fn unknown_id_fails_at_once() {
    let standin = StandIn::start(0, &[]);
    let config = RegistryConfig {
        initial_backoff: Duration::from_secs(2),
        ..fast(&standin.url, 5)
    };
    let client = SchemaRegistryClient::new(config).unwrap();
    let started = Instant::now();
    let err = client.schema_by_id(4242).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { id: 4242 }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a missing schema is not retried"
    );
}

#[tokio::test]
async fn basic_auth() {
    let standin = StandIn::start(0, &["--basic-auth", "floe:s3cret"]);
    let rec = Recording::load(&fixture_dir()).unwrap();
    let id = trips_value_id(&rec);
    let anonymous = SchemaRegistryClient::new(fast(&standin.url, 3)).unwrap();
    assert!(matches!(
        anonymous.schema_by_id(id).await,
        Err(RegistryError::Unauthorized { status: 401 })
    ));
    let wrong = SchemaRegistryClient::new(RegistryConfig {
        basic_auth: Some(("floe".into(), "guess".into())),
        ..fast(&standin.url, 3)
    })
    .unwrap();
    assert!(matches!(
        wrong.schema_by_id(id).await,
        Err(RegistryError::Unauthorized { .. })
    ));
    let right = SchemaRegistryClient::new(RegistryConfig {
        basic_auth: Some(("floe".into(), "s3cret".into())),
        ..fast(&standin.url, 3)
    })
    .unwrap();
    assert!(right.schema_by_id(id).await.is_ok());
}

#[tokio::test]
async fn a_registry_that_is_down_is_retried_with_backoff_then_reported() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let client = SchemaRegistryClient::new(fast(&url, 3)).unwrap();
    let started = Instant::now();
    let err = client.schema_by_id(1).await.unwrap_err();
    let RegistryError::Unavailable {
        attempts,
        last_error,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*attempts, 3);
    assert!(
        last_error.contains(&url),
        "names the registry: {last_error}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "backs off 100 ms then 200 ms"
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_times_out() {
    // accepts connections, never replies
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let holder = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(2).collect();
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
    });
    let config = RegistryConfig {
        request_timeout: Duration::from_millis(300),
        ..fast(&url, 2)
    };
    let client = SchemaRegistryClient::new(config).unwrap();
    let started = Instant::now();
    let err = client.schema_by_id(1).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unavailable { attempts: 2, .. }),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "two 300 ms timeouts and one backoff, not a hang"
    );
    holder.join().unwrap();
}

#[tokio::test]
async fn a_registry_that_comes_back_during_retries_is_used() {
    let rec = Recording::load(&fixture_dir()).unwrap();
    let id = trips_value_id(&rec);
    let port = free_port();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        StandIn::start(port, &[])
    });
    let client = SchemaRegistryClient::new(fast(&format!("http://127.0.0.1:{port}"), 12)).unwrap();
    let schema = client
        .schema_by_id(id)
        .await
        .expect("succeeds once the registry is up");
    assert_eq!(&*schema, &**rec.schemas.get(id).unwrap());
    drop(starter.join().unwrap());
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes test certificates");
    assert!(status.success(), "openssl {args:?}");
}

/// A private CA and a server certificate for 127.0.0.1 signed by it:
/// returns (ca.pem, server.pem, server.key).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=floe test CA",
        ]
        .iter()
        .copied()
        .chain(["-keyout", "ca.key", "-out", "ca.pem"])
        .collect::<Vec<_>>(),
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
        dir,
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[tokio::test]
async fn tls_with_a_private_certificate_authority() {
    let dir = std::env::temp_dir().join(format!("floe-registry-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = private_ca(&dir);
    let standin = StandIn::start(
        0,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(standin.url.starts_with("https://"));
    let rec = Recording::load(&fixture_dir()).unwrap();
    let id = trips_value_id(&rec);

    let untrusting = SchemaRegistryClient::new(fast(&standin.url, 1)).unwrap();
    let err = untrusting.schema_by_id(id).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "says why: {err}"
    );

    let trusting = SchemaRegistryClient::new(RegistryConfig {
        ca_certificate: Some(ca),
        ..fast(&standin.url, 1)
    })
    .unwrap();
    if let Err(e) = trusting.schema_by_id(id).await {
        panic!("trusting client failed: {e}");
    }

    let missing = RegistryConfig {
        ca_certificate: Some(dir.join("nope.pem")),
        ..fast(&standin.url, 1)
    };
    assert!(matches!(
        SchemaRegistryClient::new(missing),
        Err(RegistryError::Config(_))
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn decoding_through_the_registry_equals_decoding_the_recording() {
    let rec = Recording::load(&fixture_dir()).unwrap();
    let standin = StandIn::start(0, &[]);
    let client = SchemaRegistryClient::new(fast(&standin.url, 3)).unwrap();
    let mut via_registry = ChangeDecoder::new(client);
    let mut via_recording = ChangeDecoder::new(rec.schemas.clone());
    for m in &rec.messages {
        via_registry.push(&m.as_raw()).await.unwrap();
        via_recording.push(&m.as_raw()).await.unwrap();
    }
    let (a, b) = (via_registry.flush(), via_recording.flush());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.records, y.records, "topic {}", x.topic);
        assert_eq!(x.version, y.version);
    }
}

#[tokio::test]
async fn a_registry_outage_is_not_blamed_on_the_message() {
    let rec = Recording::load(&fixture_dir()).unwrap();
    let client =
        SchemaRegistryClient::new(fast(&format!("http://127.0.0.1:{}", free_port()), 2)).unwrap();
    let mut decoder = ChangeDecoder::new(client);
    let err = decoder.push(&rec.messages[0].as_raw()).await.unwrap_err();
    assert!(
        matches!(
            err.kind,
            DecodeErrorKind::Registry {
                source: RegistryError::Unavailable { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !err.is_message_fault(),
        "the same message must be retried, not dead-lettered"
    );
    assert_eq!(decoder.buffered_messages(), 0);
}
