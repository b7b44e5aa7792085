"""The `isoperp` CLI against anvil: the user's path, and one-line errors with non-zero exits."""

import pytest
from click.testing import CliRunner

from isoperp.cli.main import cli


def error_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output  # one line, no traceback
    return lines[0]


def test_deposit_operate_withdraw_claim_flow_succeeds(run, rpc_url):
    assert "deposit #0 queued: 1,000 USDC" in run("deposit", "1000", "--account", "1").output
    assert "posted checkpoint #1" in run("operator", "run", "--once").output
    out = run("withdraw", "250.5", "--account", "1").output
    assert "withdrawal request 1 accepted: 250.5 USDC" in out
    assert "1 withdrawal(s)" in run("operator", "run", "--once").output
    assert "final in" in run("claim", "--account", "1").output
    run("devnet", "advance", "601", "--url", rpc_url)
    assert "claimed 250.5 USDC from checkpoint 2" in run("claim", "--account", "1").output
    assert "nothing to claim" in run("claim", "--account", "1").output
    status = run("status", "--account", "1").output
    assert "749.5 USDC" in status and "claimed" in status


def test_withdraw_more_than_balance_fails_with_one_line(run):
    run("deposit", "10", "--account", "2")
    run("operator", "run", "--once")
    result = run("withdraw", "10.000001", "--account", "2", ok=False)
    assert result.exit_code == 1
    assert error_line(result).startswith("error[insufficient_collateral]")


def test_withdraw_without_account_fails(run):
    result = run("withdraw", "1", "--account", "4", ok=False)
    assert result.exit_code == 1
    assert error_line(result).startswith("error[unknown_account]")


@pytest.mark.parametrize("amount", ["1.0000001", "-5", "1e6", "abc", ""])
def test_deposit_bad_amount_fails(run, amount):
    result = run("deposit", "--account", "1", "--", amount, ok=False)
    assert result.exit_code == 1
    assert error_line(result).startswith("error[bad_amount]")


def test_deposit_zero_fails(run):
    result = run("deposit", "0", ok=False)
    assert error_line(result).startswith("error[bad_amount]")


def test_missing_deployment_fails(tmp_path):
    result = CliRunner().invoke(cli, ["--deployment", str(tmp_path / "none.json"), "status"])
    assert result.exit_code == 1
    assert error_line(result).startswith("error[no_deployment]")


def test_operator_run_needs_once_or_interval(run):
    result = run("operator", "run", ok=False)
    assert result.exit_code == 2
    assert "exactly one of --once or --interval" in result.output


def test_operator_run_nothing_to_post(run):
    assert "nothing to post" in run("operator", "run", "--once").output


def test_bad_private_key_fails(run):
    result = run("deposit", "1", "--key", "0x1234", ok=False)
    assert error_line(result).startswith("error[bad_key]")


def test_unreachable_rpc_fails(run):
    result = run("--rpc", "http://127.0.0.1:9", "status", ok=False)
    assert result.exit_code == 1
    assert error_line(result).startswith("error[chain_unavailable]")


def test_bench_gas_prints_json():
    """Smoke test of the benchmark command (figures are measured, not asserted)."""
    import json

    result = CliRunner().invoke(cli, ["bench", "gas", "--sizes", "1,3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["fills"]) == {"1", "3"}
    # batch data v2: every 37-byte FILL record is followed by its 32-byte state root
    assert report["fills"]["3"]["batch_bytes"] == 5 + 3 * (37 + 32)
    assert report["fills"]["3"]["bytes_per_fill"] == 37 + 32
    assert report["deposit"] > 0 and report["claim_withdrawal"] > 0


def test_bench_gas_rejects_bad_sizes():
    result = CliRunner().invoke(cli, ["bench", "gas", "--sizes", "x"])
    assert result.exit_code == 2


def test_bench_e2e_prints_json():
    """Smoke test of the end-to-end benchmark (figures are measured, not asserted)."""
    import json

    result = CliRunner().invoke(cli, ["bench", "e2e", "--seconds", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["acked"] > 0 and report["checkpoints"] >= 1
    assert {"ops_per_s", "fills_per_s", "p50_us", "p99_us", "gas_per_fill"} <= set(report)
