#!/usr/bin/env bash
# Installs what building and testing floe needs and is not already here.
# Idempotent and quick when everything is present; run by scripts/test.sh
# and .ci/run. Debian packages only (apt-get), as root.
#
# Needed: Rust with rustfmt and clippy (the machine's toolchain), a C
# toolchain and make (librdkafka is built from source by rdkafka-sys,
# with OpenSSL's headers from libssl-dev for TLS and SASL),
# python3 with venv (the schema-registry test stand-in, the lake readers),
# openssl (TLS test certificates), the PostgreSQL 15 server (a catalog
# database in tests), Java 17 and Debian's Jetty 9 (Kafka Connect in the
# local stack). Then, into $FLOE_CACHE so they outlive the clone: the
# Garage S3 server (built from crates.io once, about 13 minutes) and the
# independent lake readers pyiceberg and DuckDB, with Selenium for the
# dashboard test (from PyPI). Chromium and its driver (Debian) drive the
# dashboard test's browser.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

missing=()
command -v cc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# librdkafka is built with OpenSSL: TLS, SASL SCRAM (and PLAIN) to Kafka
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
# the lakehouse tests run a private PostgreSQL 15 as an Iceberg SQL catalog
[ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
# the local stack (scripts/stack.sh): Kafka Connect runs on Java 17 with
# Debian's Jetty 9 (the jars the Debezium wheels ship do not work together)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
[ -f /usr/share/java/jetty9-server.jar ] || missing+=(libjetty9-java)
# floe serve's dashboard is tested in a real headless browser
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ((${#missing[@]})); then
  log "installing ${missing[*]} (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then die "need root to apt-get install ${missing[*]}"; fi
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy missing: rustup component add clippy"

garage_bin >/dev/null
lake_readers_python >/dev/null
