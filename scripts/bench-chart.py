#!/usr/bin/env python3
"""Draws the probes of scripts/bench-freshness.sh runs as one PNG.

    scripts/bench-chart.sh OUT.png LABEL=probes.csv [LABEL=probes.csv ...]

Three panels over the run's seconds: the table's live data and delete
files; what a full count(*) and the three-column aggregate cost against
the same rows compacted (live seconds / compacted seconds; 1.0 is a
compacted table; with the driver's `count_after_s` column also the
count(*) read again after the run, beside the compacted one, and with
`count_compacted_during_s` filled the count(*) against a compacted copy
read at the same moment of the run); and the
count(*) seconds themselves, live and compacted (log scale). One line per
run, labelled as given.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        sys.exit(__doc__)
    out = argv[1]
    runs = [(label, read(path)) for label, path in (a.split("=", 1) for a in argv[2:])]
    fig, (files, cost, seconds) = plt.subplots(1, 3, figsize=(17, 4.5))
    for label, rows in runs:
        t = [int(r["seconds"]) for r in rows]
        line = files.plot(t, [int(r["data_files"]) for r in rows], label=f"{label}: data")[0]
        files.plot(t, [int(r["delete_files"]) for r in rows], "--", color=line.get_color(),
                   label=f"{label}: delete")
        ratio = [float(r["count_s"]) / max(float(r["count_compacted_s"]), 1e-9) for r in rows]
        agg = [float(r["aggregate_s"]) / max(float(r["aggregate_compacted_s"]), 1e-9)
               for r in rows]
        line = cost.plot(t, ratio, label=f"{label}: count(*)")[0]
        cost.plot(t, agg, ":", color=line.get_color(), label=f"{label}: aggregate")
        if "count_after_s" in rows[0]:
            after = [float(r["count_after_s"]) / max(float(r["count_compacted_s"]), 1e-9)
                     for r in rows]
            cost.plot(t, after, "-.", color=line.get_color(),
                      label=f"{label}: count(*) read after the run")
        during = [(float(r["count_s"]) / max(float(r["count_compacted_during_s"]), 1e-9), i)
                  for i, r in enumerate(rows) if r.get("count_compacted_during_s")]
        if during:
            cost.plot([t[i] for _, i in during], [x for x, _ in during], "--",
                      color=line.get_color(),
                      label=f"{label}: count(*) / compacted, both read during the run")
        seconds.plot(t, [float(r["count_s"]) for r in rows], color=line.get_color(),
                     label=f"{label}: live")
        seconds.plot(t, [float(r["count_compacted_s"]) for r in rows], ":",
                     color=line.get_color(), label=f"{label}: compacted")
    files.set_title("live files in taxi_cdc.trips")
    files.set_xlabel("seconds into the run")
    files.set_ylabel("files")
    files.set_ylim(bottom=0)
    files.legend(fontsize=7)
    cost.set_title("read time / the same rows compacted")
    cost.set_xlabel("seconds into the run")
    cost.set_ylabel("x compacted")
    cost.axhline(2.0, color="grey", linewidth=0.8, linestyle="--", label="goal: 2x")
    cost.set_ylim(bottom=0)
    cost.legend(fontsize=7)
    seconds.set_title("count(*) seconds")
    seconds.set_xlabel("seconds into the run")
    seconds.set_ylabel("seconds")
    seconds.set_yscale("log")
    seconds.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv)
