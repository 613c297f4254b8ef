"""The ingest bench's report: the Markdown table of its timings and memory runs, and
how dockd compares with ``cp -r`` and with ``cp -r`` then ``b3sum`` (the goals).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import blake3
from common import CacheDropper, human, machine, per_second, say, write_results
from ingest_timing import CEILING


def tool_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unavailable"
    return out.splitlines()[0].strip() if out else "unknown"


def publish(report: dict[str, Any], table: str, path: Path) -> None:
    """Print the table and write the results, the table with them, as JSON at ``path``."""
    report["table_markdown"] = table
    say("\n" + table + "\n")
    write_results(path, report)


def environment(
    workdir: Path, drop: CacheDropper, buffer_kib: int | None, load_start: float, b3sum: bool
) -> dict[str, Any]:
    """What the results ran on and with, for the results file (load average now: at the end)."""
    return {
        **machine(),
        "blake3_py": getattr(blake3, "__version__", "unknown"),
        "b3sum": tool_version(["b3sum", "--version"]) if b3sum else "missing",
        "cp": tool_version(["cp", "--version"]),
        "workdir": str(workdir),
        "page_cache": drop.status,
        "copy_buffer_kib": buffer_kib or 1024,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
    }


def timing_table(timings: dict[str, dict[str, Any]]) -> list[str]:
    """The Markdown table of the timings: median and spread, MB/s, the throughput ratio
    to ``cp -r`` + ``sync`` (``timings["cp_sync"]``) and CPU seconds."""
    lines = [
        "| measurement | median s | min-max s | MB/s | vs cp+sync | CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    base = timings["cp_sync"]["median_s"]
    for t in timings.values():
        spread = f"{min(t['seconds']):.2f}-{max(t['seconds']):.2f}"
        lines.append(
            f"| {t['name']} | {t['median_s']:.2f} | {spread} | {t['mb_per_s']:.0f} "
            f"| {base / t['median_s']:.2f} | {t['median_cpu_s']:.2f} |"
        )
    return lines


def vs_cp_sync(timings: dict[str, dict[str, Any]], key: str, goal: float) -> dict[str, Any]:
    """``timings[key]`` against ``cp -r`` + ``sync``: the ratio of their throughputs
    (the inverse of their median times) and whether it reaches ``goal``."""
    name, throughput = (
        timings[key]["name"],
        timings["cp_sync"]["median_s"] / timings[key]["median_s"],
    )
    met = throughput >= goal
    return {
        "key": f"{key}_vs_cp_sync",
        "value": throughput,
        "goal": f">= {goal:.2f}",
        "met": met,
        "text": f"{name} / (cp -r + sync) throughput: {throughput:.2f} "
        f"(goal >= {goal:.2f}: {'met' if met else 'NOT met'})",
    }


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
        *timing_table(report["timings"]),
        "",
    ]
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


def reread_ceiling(timings: dict[str, dict[str, Any]], goal: float) -> list[dict[str, Any]]:
    """What this disk allows a re-read, when the bench measured it (``CEILING``): the
    throughput of ``cp -r`` + ``sync`` alone against the same with a direct read of as
    many bytes beside it, the ceiling of ``verify = "reread"``'s ratio whatever the
    code; and how much of that ceiling dockd's re-read reaches."""
    if CEILING not in timings:
        return []
    base = timings["cp_sync"]["median_s"]
    ceiling = base / timings[CEILING]["median_s"]
    out: list[dict[str, Any]] = [
        {
            "key": "reread_ceiling_vs_cp_sync",
            "value": ceiling,
            "goal": f">= {goal:.2f}",
            "met": ceiling >= goal,
            "text": f"the disk's ceiling for any re-read: (cp -r + sync) / (the same with a "
            f"direct read of as many bytes beside it) = {ceiling:.2f} "
            f"({'above' if ceiling >= goal else 'BELOW'} the goal of {goal:.2f} for "
            "verify=reread)",
        }
    ]
    if "dockd_reread" in timings:
        share = base / timings["dockd_reread"]["median_s"] / ceiling
        out.append(
            {
                "key": "dockd_reread_vs_ceiling",
                "value": share,
                "goal": "",
                "met": True,
                "text": f"dockd verify=reread reaches {share:.2f} of that ceiling",
            }
        )
    return out


def ratio_lines(timings: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """dockd against issue 16's goals, from the timings (``median_s`` of each): with the
    shipped verify >= 1.3x the verified copy made by hand and >= 0.7 of ``cp -r`` +
    ``sync``; with verify = "none" >= 1.0 of ``cp -r`` + ``sync``."""
    out: list[dict[str, Any]] = []
    if "dockd_none" in timings:
        out.append(vs_cp_sync(timings, "dockd_none", 1.0))
    if "dockd_reread" in timings:
        out.append(vs_cp_sync(timings, "dockd_reread", 0.7))
        out += reread_ceiling(timings, 0.7)
        if "verified_by_hand" in timings:
            name, d = timings["dockd_reread"]["name"], timings["dockd_reread"]["median_s"]
            speed = timings["verified_by_hand"]["median_s"] / d
            met = speed >= 1.3
            out.append(
                {
                    "key": "dockd_reread_vs_verified_by_hand",
                    "value": speed,
                    "goal": ">= 1.30",
                    "met": met,
                    "text": f"{name} vs the verified copy by hand (cp -r + sync, then b3sum "
                    f"of source and copy, cache dropped): {speed:.2f}x its speed "
                    f"(goal >= 1.30: {'met' if met else 'NOT met'})",
                }
            )
    return out
