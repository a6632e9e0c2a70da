#!/usr/bin/env python3
"""Samples, charts and sums up a soak run (scripts/soak.sh).

    soak-sample.py sample --pid PID --catalog CATALOG.db --endpoint URL
                          --seconds S --every N [--expire CMD --expire-every N]
                          --out samples.csv
    soak-sample.py chart --samples samples.csv --out soak.png
    soak-sample.py summary --samples samples.csv

`sample` reads, every N seconds, the process's resident memory, open file
descriptors and threads (/proc), and the size of each table's current
metadata file (its location from the SQL catalog, its size from S3, with
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); it runs CMD every
--expire-every seconds. `chart` needs matplotlib, `sample` pyarrow.
"""
import argparse
import csv
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from urllib.parse import urlparse

FIELDS = ["seconds", "rss_mb", "fds", "threads", "tables", "metadata_kb_max", "metadata_kb_total"]


def proc(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    rss_kb = int(status["VmRSS"].split()[0])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), int(status["Threads"])


def metadata_sizes(catalog, fs):
    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT metadata_location FROM iceberg_tables").fetchall()
    sizes = []
    for (location,) in rows:
        if not location:
            continue
        url = urlparse(location)
        info = fs.get_file_info(f"{url.netloc}{url.path}")
        sizes.append(info.size or 0)
    return sizes


def sample(args):
    from pyarrow import fs as pafs

    endpoint = urlparse(args.endpoint)
    s3 = pafs.S3FileSystem(
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme or "http",
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_REGION", "garage"),
    )
    started = time.monotonic()
    next_expire = args.expire_every
    # expiry runs beside the sampling (it can take minutes), one at a time
    expiring = None
    expiries = []
    expire_log = open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "expire.log"), "a")
    with open(args.out, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        while True:
            elapsed = time.monotonic() - started
            if elapsed > args.seconds:
                break
            try:
                rss, fds, threads = proc(args.pid)
            except FileNotFoundError:
                sys.exit(f"process {args.pid} is gone")
            try:
                sizes = metadata_sizes(args.catalog, s3)
            except (sqlite3.Error, OSError) as e:
                print(f"metadata sizes: {e}", file=sys.stderr)
                sizes = []
            writer.writerow([
                round(elapsed), f"{rss:.1f}", fds, threads, len(sizes),
                f"{max(sizes, default=0) / 1024:.1f}", f"{sum(sizes) / 1024:.1f}",
            ])
            out.flush()
            if expiring is not None and expiring[0].poll() is not None:
                proc_, began = expiring
                expiries.append(time.monotonic() - began)
                if proc_.returncode != 0:
                    print(f"expire failed (exit {proc_.returncode}; see expire.log)", file=sys.stderr)
                expiring = None
            if args.expire and elapsed >= next_expire and expiring is None:
                next_expire = elapsed + args.expire_every
                expiring = (
                    subprocess.Popen(shlex.split(args.expire), stdout=expire_log, stderr=expire_log),
                    time.monotonic(),
                )
            time.sleep(max(0.0, args.every - (time.monotonic() - started - elapsed)))
    if expiring is not None:
        expiring[0].wait()
        expiries.append(time.monotonic() - expiring[1])
    if expiries:
        print(f"{len(expiries)} expiry runs, {min(expiries):.0f}-{max(expiries):.0f} s each", file=sys.stderr)


def read(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def chart(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read(args.samples)
    minutes = [r["seconds"] / 60 for r in rows]
    fig, (mem, counts, meta) = plt.subplots(1, 3, figsize=(15, 4.2))
    mem.plot(minutes, [r["rss_mb"] for r in rows], color="tab:blue")
    mem.set_title("floe ingest resident memory")
    mem.set_ylabel("MiB")
    counts.plot(minutes, [r["fds"] for r in rows], label="open file descriptors")
    counts.plot(minutes, [r["threads"] for r in rows], label="threads")
    counts.set_title("descriptors and threads")
    counts.legend()
    meta.plot(minutes, [r["metadata_kb_max"] for r in rows], label="largest table")
    meta.plot(minutes, [r["metadata_kb_total"] / max(r["tables"], 1) for r in rows], label="mean per table")
    meta.set_title("current metadata.json size (read per commit)")
    meta.set_ylabel("KiB")
    meta.legend()
    for ax in (mem, counts, meta):
        ax.set_xlabel("minutes")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"chart: {args.out}")


def summary(args):
    rows = read(args.samples)
    if not rows:
        sys.exit("no samples")
    warm = [r for r in rows if r["seconds"] >= 300] or rows
    first, last = warm[0], rows[-1]
    peak = lambda k: max(r[k] for r in rows)  # noqa: E731
    print(
        f"{len(rows)} samples over {last['seconds'] / 60:.1f} min; resident memory "
        f"{first['rss_mb']:.0f} MiB at {first['seconds'] / 60:.0f} min, {last['rss_mb']:.0f} MiB at the end, "
        f"peak {peak('rss_mb'):.0f} MiB; file descriptors peak {peak('fds'):.0f} (end {last['fds']:.0f}); "
        f"threads peak {peak('threads'):.0f} (end {last['threads']:.0f}); largest metadata file "
        f"{first['metadata_kb_max']:.0f} KiB at {first['seconds'] / 60:.0f} min, {last['metadata_kb_max']:.0f} KiB "
        f"at the end, peak {peak('metadata_kb_max'):.0f} KiB"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--catalog", required=True)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--seconds", type=int, required=True)
    s.add_argument("--every", type=int, default=10)
    s.add_argument("--expire", default="")
    s.add_argument("--expire-every", type=int, default=120)
    s.add_argument("--out", required=True)
    c = sub.add_parser("chart")
    c.add_argument("--samples", required=True)
    c.add_argument("--out", required=True)
    m = sub.add_parser("summary")
    m.add_argument("--samples", required=True)
    args = parser.parse_args()
    {"sample": sample, "chart": chart, "summary": summary}[args.command](args)


if __name__ == "__main__":
    main()
