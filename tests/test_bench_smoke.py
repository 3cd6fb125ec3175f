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
    assert result["ratio_median"] > 0  # a timing ratio: its goal is on the page, not here


def test_translate_bench_runs_both_workloads_and_scales_over_processes(tmp_path: Path) -> None:
    stdout, result = run_bench(
        "translate", tmp_path, "--rounds", "1", "--count", "20", "--processes", "2"
    )
    assert result["repeated_names_per_s_median"] > 0 and result["distinct_names_per_s_median"] > 0
    assert result["processes_1_per_s_median"] > 0 and result["processes_2_per_s_median"] > 0
    assert "2 processes" in stdout


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


def test_the_harness_runs_everything_and_writes_the_page(tmp_path: Path) -> None:
    """`python -m bench --quick`: every benchmark, results.json, the page and its plots."""
    page = tmp_path / "performance.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--page", str(page)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["runs"]) == {
        "validate",
        "translate",
        "profile",
        "pipeline",
        "netting",
        "replay",
        "startup",
        "liquidity",
    }
    assert results["quick"] is True and results["machine"]["cores"] >= 1
    text = page.read_text()
    assert "quick run: tiny sizes" in text
    for heading in (
        "## Goals",
        "### Throughput vs batch size",
        "### Latency vs offered load",
        "## Netting",
        "## Where a translation's time goes",
    ):
        assert heading in text
    for png in (
        "throughput-vs-batch",
        "latency-vs-load",
        "netting-vs-obligations",
        "translation-profile",
    ):
        assert (tmp_path / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png}.png)" in text
    # The pipeline bench: gateway and passthrough, the batch sweep, latency per offered load.
    pipeline = results["runs"]["pipeline"]["result"]
    assert pipeline["gateway_per_s_median"] > 0 and pipeline["passthrough_per_s_median"] > 0
    assert pipeline["batch_20_per_s_median"] > 0
    assert pipeline["latency_100_samples"] == 100
    assert pipeline["latency_half_samples"] > 0  # the load at half its measured capacity
    assert results["runs"]["startup"]["result"]["ratio_median"] > 1
    assert 0 <= pipeline["latency_100_p50_ms_median"] <= pipeline["latency_100_p99_ms_median"]
    assert "processes at once, combined: 1: " in text
    # The profile measured every step and the whole path. How closely the steps add up to
    # the whole is a timing, for the page (a bound here failed on a loaded CI machine).
    profile = results["runs"]["profile"]["result"]
    assert profile["stages_us"] and all(us > 0 for us in profile["stages_us"].values())
    assert profile["whole_us"] > 0 and profile["sum_us"] == sum(profile["stages_us"].values())


def test_liquidity_bench_decides_a_day_both_ways_and_times_a_run(tmp_path: Path) -> None:
    stdout, result = run_bench(
        "liquidity", tmp_path, "--payments", "300", "--rounds", "1", "--queues", "100"
    )
    assert "offsetting multilateral" in stdout and "offsetting off" in stdout
    for level in ("cap1.5", "cap5"):
        assert 0 <= result[f"{level}_off_released_share"] <= 1
        assert result[f"{level}_multilateral_released_share"] >= 0
    assert result["run_100_s_median"] > 0 and result["payments"] == 300
