#!/usr/bin/env python
"""Memory of a rescore-path run at two archive sizes: does it grow with the archive?

    .venv/bin/python -m scripts.bench.memory [--sizes 100 1000]

Each size: a fresh copy of a seeded archive of stored transcripts (see common.seed_archive),
then ``run(rescore_only=True)`` in a fresh process whose whole process tree (driver, Ray
workers, Ray's own processes) is sampled with psutil every 0.2 s.  Reported: peak RSS of
the driver, peak of the workers' summed RSS, the largest single worker, Ray's system
processes, and the peak PSS of the whole tree (shared pages split, so the object store
is not counted once per process).  Growth is explained from what the driver holds: the
ledger, the listing of stored transcripts, and the calls/insights tables it rebuilds
whole (sizes measured on the run's own output).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from scripts.bench.common import (archive_copy, command_line, loadavg, md_table, run_child,
                                  save_result, small_png, verdict)

TARGET_GROWTH = 0.10


def output_sizes(out: Path) -> dict:
    """Sizes of what the driver rebuilds in memory at the end of a run."""
    import polars as pl

    res = {}
    for name in ("calls", "insights"):
        files = list((out / "tables" / name).rglob("*.parquet"))
        if files:
            df = pl.read_delta(str(out / "tables" / name))      # the live version only
            res[f"{name}_rows"] = df.height
            res[f"{name}_mb_in_memory"] = df.estimated_size() / 2**20
            res[f"{name}_files"] = len(files)
    led = out / "state" / "ledger.parquet"
    if led.is_file():
        df = pl.read_parquet(led)
        res["ledger_rows"] = df.height
        res["ledger_mb_in_memory"] = df.estimated_size() / 2**20
    res["output_files"] = sum(1 for p in out.rglob("*") if p.is_file())
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 1000])
    args = ap.parse_args(argv)

    runs = []
    for n in args.sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-mem-{n}-"))
        facts = archive_copy(n, tmp / "out")
        print(f"rescore of {n} stored transcripts, sampling memory ... (load {loadavg()})", file=sys.stderr, flush=True)
        r = run_child(["--mode", "rescore", "--output", str(tmp / "out")], sample=True)
        r["n"] = n
        r["archive"] = facts
        r["outputs"] = output_sizes(tmp / "out")
        r["loadavg"] = loadavg()
        runs.append(r)
        shutil.rmtree(tmp, ignore_errors=True)

    keys = [("driver_peak_mb", "driver peak RSS MB"), ("workers_sum_peak_mb", "workers sum peak RSS MB"),
            ("workers_max_peak_mb", "largest worker peak RSS MB"), ("ray_system_peak_mb", "Ray system procs peak RSS MB"),
            ("tree_pss_peak_mb", "whole tree peak PSS MB")]
    small, big = runs[0], runs[-1]
    growth = {k: (big["memory"][k] / small["memory"][k] - 1) if small["memory"][k] else 0.0 for k, _ in keys}
    met = {k: abs(growth[k]) <= TARGET_GROWTH for k, _ in keys}
    rows = []
    for k, label in keys:
        rows.append([label] + [f"{r['memory'][k]:.0f}" for r in runs]
                    + [f"{growth[k]:+.1%}", verdict(met[k]) if k in ("driver_peak_mb", "workers_sum_peak_mb",
                                                                   "workers_max_peak_mb") else "-"])
    rows.append(["max Ray workers alive"] + [str(r["memory"]["max_workers_alive"]) for r in runs] + ["", ""])
    rows.append(["run() s"] + [f"{r['run_s']:.1f}" for r in runs] + ["", ""])
    rows.append(["load avg at end"] + [r["loadavg"] for r in runs] + ["", ""])
    table = md_table(["", *[f"{r['n']:,} calls" for r in runs], f"growth {small['n']}->{big['n']}",
                      f"target within {TARGET_GROWTH:.0%}"], rows)

    dn = big["n"] - small["n"]
    d_driver = big["memory"]["driver_peak_mb"] - small["memory"]["driver_peak_mb"]
    o_s, o_b = small["outputs"], big["outputs"]
    explain = [
        f"Driver growth {d_driver:+.0f} MB for {dn:,} more calls = {d_driver * 1024 / dn:+.1f} KB per call.",
        f"What the driver holds that scales with the archive (measured on the run's own output): "
        f"calls table {o_s.get('calls_mb_in_memory', 0):.2f} -> {o_b.get('calls_mb_in_memory', 0):.2f} MB "
        f"({o_b.get('calls_rows', 0)} rows), insights table {o_s.get('insights_mb_in_memory', 0):.2f} -> "
        f"{o_b.get('insights_mb_in_memory', 0):.2f} MB, ledger {o_s.get('ledger_mb_in_memory', 0):.2f} -> "
        f"{o_b.get('ledger_mb_in_memory', 0):.2f} MB in Arrow form.  The driver folds each result into "
        f"columnar frames as it streams (commit._Results, 256 calls at a time), so what stays per call is "
        f"its ledger Entry and its entry in the listing of stored transcripts.",
    ]
    text = table + "\n\n" + " ".join(explain)
    print(text)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 2.8), sharey=True)
        axes = axes if len(runs) > 1 else [axes]
        for ax, r in zip(axes, runs):
            s = r["memory_series"]
            t = [x[0] for x in s]
            ax.plot(t, [x[1] for x in s], label="driver RSS")
            ax.plot(t, [x[2] for x in s], label="workers RSS (sum)")
            ax.plot(t, [x[3] for x in s], label="Ray system RSS")
            ax.plot(t, [x[4] for x in s], label="tree PSS", ls="--")
            ax.set_title(f"rescore {r['n']:,} calls", fontsize=9)
            ax.set_xlabel("s")
        axes[0].set_ylabel("MB")
        axes[0].legend(fontsize=7)
        small_png(fig, "memory")
    except Exception as exc:
        print(f"(plot failed: {exc})", file=sys.stderr)

    for r in runs:
        r.pop("memory_series", None)
        r.pop("log_tail", None)
    save_result("memory", {"command": command_line(), "runs": runs, "growth": growth, "met": met,
                           "target_growth": TARGET_GROWTH, "markdown": text, "loadavg_end": loadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
