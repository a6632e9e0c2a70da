# floe: the CLI (ingest, jobs, sql) plus the scripts and connector configs
# the one-shot set-up container runs.
FROM rust:1.94-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libsasl2-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin floe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends bash ca-certificates curl python3 libsasl2-2 libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/floe /usr/local/bin/floe
COPY scripts /opt/floe/scripts
COPY connectors /opt/floe/connectors
COPY analytics/jobs /opt/floe/analytics/jobs
COPY analytics/data /opt/floe/analytics/data
WORKDIR /opt/floe
ENTRYPOINT ["floe"]
