"""Benchmarks run in tiny sizes: they must keep working, their figures are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_validate_bench_runs_and_reports_its_ratio(tmp_path: Path) -> None:
    out = tmp_path / "validate.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.validate",
            "--rounds",
            "2",
            "--count",
            "50",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ratio gateway/bare" in done.stdout
    result = json.loads(out.read_text())
    assert result["parse_validate_per_s_median"] > 0
    assert 0 < result["ratio_median"] < 2


def test_translate_bench_runs_both_workloads(tmp_path: Path) -> None:
    out = tmp_path / "translate.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.translate",
            "--rounds",
            "1",
            "--count",
            "20",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["repeated_names_per_s_median"] > 0 and result["distinct_names_per_s_median"] > 0


def test_pipeline_bench_runs_gateway_and_passthrough(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.pipeline",
            "--rounds",
            "1",
            "--count",
            "100",
            "--rate",
            "100",
            "--seconds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ratio gateway/passthrough" in done.stdout
    result = json.loads(out.read_text())
    assert result["gateway_per_s_median"] > 0 and result["passthrough_per_s_median"] > 0
    assert result["latency_samples"] == 100 and result["latency_p99_ms"] >= 0
