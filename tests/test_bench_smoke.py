"""Benchmarks run in tiny sizes: they must keep working, their figures are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_bench(module: str, tmp_path: Path, *args: str, timeout: int = 120) -> tuple[str, Any]:
    """Run `python -m bench.<module> ARGS --json FILE`; its stdout and its JSON result."""
    out = tmp_path / f"{module}.json"
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def test_validate_bench_runs_and_reports_its_ratio(tmp_path: Path) -> None:
    stdout, result = run_bench("validate", tmp_path, "--rounds", "2", "--count", "50")
    assert "ratio gateway/bare" in stdout
    assert result["parse_validate_per_s_median"] > 0
    assert 0 < result["ratio_median"] < 2


def test_translate_bench_runs_both_workloads(tmp_path: Path) -> None:
    _, result = run_bench("translate", tmp_path, "--rounds", "1", "--count", "20")
    assert result["repeated_names_per_s_median"] > 0 and result["distinct_names_per_s_median"] > 0


def test_pipeline_bench_runs_gateway_and_passthrough(tmp_path: Path) -> None:
    stdout, result = run_bench(
        "pipeline",
        tmp_path,
        *("--rounds", "1", "--count", "100", "--rate", "100", "--seconds", "1"),
        timeout=300,
    )
    assert "ratio gateway/passthrough" in stdout
    assert result["gateway_per_s_median"] > 0 and result["passthrough_per_s_median"] > 0
    assert result["latency_samples"] == 100 and result["latency_p99_ms"] >= 0


def test_netting_bench_closes_a_cycle(tmp_path: Path) -> None:
    stdout, result = run_bench(
        "netting", tmp_path, "--count", "2000", "--participants", "20", "--rounds", "1", "--curve"
    )
    assert "close (all of it)" in stdout and "stream + net" in stdout
    assert result["close_s_median"] > 0 and result["peak_rss_mb"] > 0
    assert "curve_2000_s" in result


def test_replay_bench_compares_with_a_bare_producer(tmp_path: Path) -> None:
    stdout, result = run_bench("replay", tmp_path, "--count", "200", "--rounds", "1")
    assert "ratio replay/bare" in stdout
    assert result["replay_per_s_median"] > 0 and result["ratio_median"] > 0
