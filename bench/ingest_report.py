"""The ingest bench's report: the Markdown table of its timings and memory runs, and
how dockd compares with ``cp -r`` and with ``cp -r`` then ``b3sum`` (the goals).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

from common import human, per_second


def tool_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unavailable"
    return out.splitlines()[0].strip() if out else "unknown"


def render_table(report: dict[str, Any]) -> str:
    env = report["environment"]
    tree = report["tree"]
    lines = [
        f"dockd ingest bench, {tree['files']} x {human(tree['file_size'])} "
        f"({tree['fill']} fill), median of {report['repeat']} run(s); "
        f"{env['cpus']} CPUs, {env['kernel']}, copy_buffer {env['copy_buffer_kib']} KiB, "
        f"page cache: {env['page_cache']}; load average {env['loadavg_start']:.2f} at start, "
        f"{env['loadavg_end']:.2f} at end",
        "",
        "| measurement | median s | min-max s | MB/s | vs cp+sync | CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = report["timings"]["cp_sync"]["median_s"]
    for t in report["timings"].values():
        spread = f"{min(t['seconds']):.2f}-{max(t['seconds']):.2f}"
        lines.append(
            f"| {t['name']} | {t['median_s']:.2f} | {spread} | {t['mb_per_s']:.0f} "
            f"| {base / t['median_s']:.2f} | {t['median_cpu_s']:.2f} |"
        )
    lines.append("")
    lines += [f"- {r['text']}" for r in report["ratios"]]
    if not report["hashes_agree"]:
        lines.append("- WARNING: the BLAKE3 digests of dockd and b3sum DIFFER")
    lines += [
        "",
        f"| dockd ingest (verify={report['memory_verify']}), fresh process "
        "| seconds | MB/s | peak RSS (VmHWM) | ru_maxrss |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in report["memory"]:
        hwm = f"{m['vmhwm_kib'] / 1024:.1f} MiB" if m["vmhwm_kib"] else "n/a"
        big = m["size_bytes"] >= 1 << 20
        rate = f"{per_second(m['size_bytes'], m['seconds']):.0f}" if big else "-"
        lines.append(
            f"| {m['label']} | {m['seconds']:.2f} | {rate} "
            f"| {hwm} | {m['ru_maxrss_kib'] / 1024:.1f} MiB |"
        )
    if report["memory_verdict"]:
        lines += ["", f"- {report['memory_verdict']}"]
    return "\n".join(lines)


def ratio_lines(timings: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """dockd against the goals, from the timings of the results (``median_s`` of each)."""
    out: list[dict[str, Any]] = []
    cp = timings["cp_sync"]["median_s"]
    cpb3 = timings["cp_b3sum"]["median_s"]
    cpb3s = timings["cp_b3sum_sync"]["median_s"]
    for key in ("dockd_none", "dockd_reread"):
        if key not in timings:
            continue
        name, d = timings[key]["name"], timings[key]["median_s"]
        throughput = cp / d
        out.append(
            {
                "key": f"{key}_vs_cp_sync",
                "value": throughput,
                "goal": ">= 0.90",
                "met": throughput >= 0.9,
                "text": f"{name} / (cp -r + sync) throughput: {throughput:.2f} "
                f"(goal >= 0.90: {'met' if throughput >= 0.9 else 'NOT met'})",
            }
        )
        speed, speed_sync = cpb3 / d, cpb3s / d
        out.append(
            {
                "key": f"{key}_vs_cp_b3sum",
                "value": speed,
                "value_with_sync": speed_sync,
                "goal": ">= 1.10 (clearly faster)",
                "met": speed >= 1.1,
                "text": f"{name} vs cp -r then b3sum: {speed:.2f}x its speed "
                f"({'clearly faster' if speed >= 1.1 else 'NOT clearly faster'}); "
                f"{speed_sync:.2f}x once that copy is synced as dockd's is",
            }
        )
    return out
