//! Secrets kept out of everything floe prints: logs at every level and in
//! both formats, error messages, `--check` verdicts and panics.
//!
//! Typed configs hide their own secrets (`ResolvedS3`'s `Debug`), but
//! that is not enough: dependencies log what they hold (at debug level
//! the S3 signer prints its credentials), clients echo URLs with a user
//! and password in them, and librdkafka repeats a property's value when it
//! refuses the key. So every byte floe writes to stderr, and every verdict
//! and error line, goes through [`redact`]: the secret values the config
//! and environment hold are replaced by `***`, and so is anything shaped
//! like a password in a URL (`scheme://user:password@host`) or a
//! connection string (`password=...`), registered or not.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

/// Secret values seen so far, longest first (so a secret containing
/// another is hidden whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// What a hidden value prints as.
pub const HIDDEN: &str = "***";

/// Shorter values are not hidden: replacing every `0` or `ab` in the
/// output would garble it without hiding anything worth hiding.
const MIN_SECRET_LEN: usize = 4;

/// Whether a config key (or environment variable) names a secret: it
/// holds `password`, `secret` or `token` (`sasl.password`,
/// `secret_access_key`, `session_token`, `FLOE__REGISTRY__PASSWORD`).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// Hides `value` from everything printed from now on.
pub fn keep_out(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Every string of `value` under a secret key, and every password in a
/// URL or connection string anywhere in it, hidden from now on.
pub fn keep_out_of_toml(value: &toml::Value) {
    walk(value, false);
}

fn walk(value: &toml::Value, secret: bool) {
    match value {
        toml::Value::String(s) if secret => keep_out(s),
        toml::Value::String(s) => {
            for password in passwords_in(s) {
                keep_out(password);
            }
        }
        // an all-digit password set from the environment, or in the file
        toml::Value::Integer(i) if secret => keep_out(&i.to_string()),
        toml::Value::Table(t) => {
            for (k, v) in t {
                walk(v, secret || is_secret_key(k));
            }
        }
        toml::Value::Array(a) => a.iter().for_each(|v| walk(v, secret)),
        _ => {}
    }
}

/// The environment variables holding secrets: floe's own overrides of a
/// secret key, and the variables its clients read (AWS_*, the REST
/// catalog token, libpq's password).
pub fn keep_out_of_environment(vars: impl Iterator<Item = (String, String)>) {
    for (name, value) in vars {
        let known = matches!(
            name.as_str(),
            "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN" | "PGPASSWORD"
        );
        if known || (name.starts_with("FLOE") && is_secret_key(&name)) {
            keep_out(&value);
        }
        for password in passwords_in(&value) {
            keep_out(password);
        }
    }
}

/// Passwords in `text`: of URLs (`scheme://user:password@`) and of
/// libpq-style connection strings (`password=...`).
fn passwords_in(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        let authority = &after[..end];
        if let Some((userinfo, _host)) = authority.rsplit_once('@') {
            if let Some((_user, password)) = userinfo.split_once(':') {
                if !password.is_empty() {
                    out.push(password);
                }
            }
        }
        rest = after;
    }
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("password=") {
        let start = from + at + "password=".len();
        let value = &text[start..];
        let end = value
            .find(|c: char| c.is_whitespace() || c == '&' || c == ';' || c == '"' || c == '\'')
            .unwrap_or(value.len());
        if end > 0 {
            out.push(&value[..end]);
        }
        from = start;
    }
    out
}

/// `text` with every secret hidden: the registered values, and passwords
/// in URLs and connection strings.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    let passwords: Vec<String> = passwords_in(text)
        .into_iter()
        .filter(|p| *p != HIDDEN)
        .map(str::to_string)
        .collect();
    for password in passwords {
        out = Cow::Owned(out.replace(&password, HIDDEN));
    }
    if let Ok(secrets) = SECRETS.read() {
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), HIDDEN));
            }
        }
    }
    out
}

/// stderr for the log subscriber: each event is written whole, redacted.
pub struct RedactedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(Vec::with_capacity(256))
    }
}

/// One log event's bytes, redacted and written to stderr when dropped.
pub struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        // a log line that cannot be written has nowhere else to go
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_known_by_name() {
        for key in [
            "password",
            "sasl.password",
            "ssl.key.password",
            "secret_access_key",
            "session_token",
            "token",
            "FLOE__REGISTRY__PASSWORD",
            "FLOE__LAKE__S3__SECRET_ACCESS_KEY",
            "password_file",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["url", "username", "access_key_id", "bootstrap_servers"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn passwords_in_urls_and_connection_strings_are_hidden_unregistered() {
        assert_eq!(
            redact("GET http://reader:hunter22@registry:8081/subjects failed"),
            "GET http://reader:***@registry:8081/subjects failed"
        );
        assert_eq!(
            redact("host=db user=reader password=pa55word dbname=cat"),
            "host=db user=reader password=*** dbname=cat"
        );
        assert_eq!(
            redact("postgres://u:p%40ss@h/db?sslmode=require"),
            "postgres://u:***@h/db?sslmode=require"
        );
        // no password: nothing changes
        assert_eq!(redact("http://registry:8081"), "http://registry:8081");
        assert_eq!(redact("s3://lake/e2e"), "s3://lake/e2e");
    }

    #[test]
    fn registered_values_and_secret_keys_of_a_config_are_hidden() {
        let doc: toml::Value = toml::from_str(
            r#"
            [kafka]
            properties = { "sasl.password" = "kafka-pass-1", "sasl.username" = "floe" }
            [registry]
            password = 73194286
            [lake.s3]
            secret_access_key = "s3-secret-xyz"
            access_key_id = "GKvisible"
            "#,
        )
        .unwrap();
        keep_out_of_toml(&doc);
        let shown = redact(
            "kafka-pass-1 and 73194286 and s3-secret-xyz; \
             StaticCredentialProvider { access_key_id: GKvisible, secret_access_key: \"s3-secret-xyz\" }",
        );
        assert!(!shown.contains("kafka-pass-1"), "{shown}");
        assert!(!shown.contains("73194286"), "{shown}");
        assert!(!shown.contains("s3-secret-xyz"), "{shown}");
        // not secrets: the user name and the access key id
        assert!(shown.contains("GKvisible"), "{shown}");
        // too short to hide without garbling the output
        keep_out("ab");
        assert_eq!(redact("tab"), "tab");
    }

    #[test]
    fn environment_secrets_are_hidden_by_their_names() {
        keep_out_of_environment(
            [
                (
                    "FLOE__REGISTRY__PASSWORD".to_string(),
                    "env-pass-42".to_string(),
                ),
                ("AWS_SESSION_TOKEN".to_string(), "tok-tok-tok".to_string()),
                (
                    "FLOE__KAFKA__GROUP_ID".to_string(),
                    "visible-group".to_string(),
                ),
            ]
            .into_iter(),
        );
        let shown = redact("env-pass-42 tok-tok-tok visible-group");
        assert_eq!(shown, "*** *** visible-group");
    }

    #[test]
    fn log_events_are_written_redacted() {
        keep_out("event-secret-9");
        let mut w = EventWriter(Vec::new());
        w.write_all(b"secret_access_key: \"event-secret-9\"")
            .unwrap();
        assert_eq!(
            redact(&String::from_utf8_lossy(&w.0)),
            "secret_access_key: \"***\""
        );
        // dropped without writing the original anywhere else
        w.0.clear();
    }
}
