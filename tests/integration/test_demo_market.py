"""`isoperp demo` end to end on its own anvil (a free port, not the one ape-foundry started): the
story, the operator loop with its API, the simulator with a flash crash, finality by time travel,
the audit from L1, the report; and Ctrl-C stops everything it started."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from isoperp.cli.demo_cmd import free_port
from isoperp.cli.main import cli
from isoperp.devnet import is_up

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_runs_market_and_writes_report(tmp_path):
    port = free_port(0)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli, ["demo", "--seconds", "8", "--port", str(port), "--report-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "every check passed" in result.output
    assert not is_up(f"http://127.0.0.1:{port}"), "anvil is still running"

    report = json.loads((out / "report.json").read_text())
    s = report["summary"]
    assert s["fills"] > 0
    assert s["liquidations"] + s["backstops"] + s["deleverages"] >= 1
    assert s["checkpoints"] == s["latest_seq"] == s["last_finalized_seq"] > 2
    assert s["gas_per_fill"] == s["gas_checkpoints_with_fills"] // s["fills"] > 0
    assert s["vault_balance"] >= s["total_liabilities"]
    assert s["crash"]["to_ticks"] < s["crash"]["from_ticks"] * 75 // 100
    for stage in ("rejected_by_api", "rejected_by_operator"):  # reason -> count
        assert all(isinstance(n, int) and n > 0 for n in s[stage].values())
    series = report["series"]
    assert len(series["oracle_prices"]) == 8
    assert len(series["checkpoints"]) == s["checkpoints"]
    assert sum(c["fills"] for c in series["checkpoints"]) == s["fills"]
    assert any(e["timestamp"] >= s["crash"]["chain_time"] for e in series["risk_events"])
    assert len(series["progress"]) == 8
    checks = report["checks"]
    assert any("Settlement_NotFinalized" in c for c in checks)  # the story ran first
    assert any(c.startswith("after the crash:") for c in checks)
    assert any(c.startswith("ledger invariants hold") for c in checks)
    assert any("= the operator's" in c for c in checks)
    for claim in checks:
        assert claim in result.output

    png = (out / "report.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 20_000
    assert str(out / "report.json") in result.output and str(out / "report.png") in result.output


def _isoperp() -> list[str]:
    script = Path(sys.executable).with_name("isoperp")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from isoperp.cli.main import cli; cli()"]


def test_demo_ctrl_c_stops_everything_and_fails(tmp_path):
    port = free_port(0)
    proc = subprocess.Popen(
        [*_isoperp(), "demo", "--seconds", "60", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            if "Trading for 60s" in line or time.monotonic() > deadline:
                break
        assert is_up(f"http://127.0.0.1:{port}")
        time.sleep(2)  # the simulator and the operator loop are running
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert [line for line in err.splitlines() if line.strip()] == [
        "demo interrupted: stopped the operator, the API and anvil"
    ]
    assert not is_up(f"http://127.0.0.1:{port}"), "anvil is still running"
    assert not (tmp_path / "demo-report").exists()
