"""`isoperp bench matching`: a small run is deterministic and reports the documented figures."""

from __future__ import annotations

import json

from click.testing import CliRunner

from isoperp.bench.matching import CANCEL, EXPIRE, PLACE, build_workload, run_matching_bench
from isoperp.cli.bench_cmd import bench


def test_build_workload_same_seed_same_operations() -> None:
    a = build_workload(3_000, 500, seed=7)
    b = build_workload(3_000, 500, seed=7)
    assert a == b
    assert a != build_workload(3_000, 500, seed=8)
    assert len(a.warmup) == 500 and len(a.timed) == 3_000
    kinds = [kind for kind, _, _ in a.timed]
    assert {CANCEL, PLACE, EXPIRE} == set(kinds)
    assert 0.3 < kinds.count(CANCEL) / len(kinds) < 0.5


def test_run_matching_bench_small_reports_figures() -> None:
    report = run_matching_bench(ops=4_000, warmup=1_000, seed=3, repeat=2)
    for name in ("ops_per_s", "p50_us", "p99_us", "orders", "fills", "python"):
        assert name in report
    assert report["orders"] == 4_000
    assert isinstance(report["fills"], int) and report["fills"] > 0
    assert report["places"] + report["cancels"] <= 4_000  # type: ignore[operator]
    assert len(report["ops_per_s_runs"]) == 2  # type: ignore[arg-type]
    again = run_matching_bench(ops=4_000, warmup=1_000, seed=3, repeat=1)
    assert (again["fills"], again["resting_at_end"]) == (report["fills"], report["resting_at_end"])


def test_cli_bench_matching_json_prints_one_object() -> None:
    result = CliRunner().invoke(
        bench, ["matching", "--ops", "2000", "--warmup", "200", "--repeat", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["benchmark"] == "matching" and report["orders"] == 2_000
