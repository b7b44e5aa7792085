"""Trading end to end on anvil: signed orders through the operator's journal, matching, checkpoints
on L1; the book survives a restart; a flash crash liquidates only the over-levered trader."""

from isoperp.chain.l1 import rebuild
from isoperp.ledger import risk
from isoperp.protocol.constants import INSURANCE_ACCOUNT


def ledger_of(run, rpc_url):
    from isoperp.chain.client import ChainClient, connect
    from isoperp.chain.contracts import System
    from isoperp.chain.deployment import Deployment

    system = System(ChainClient(connect(rpc_url)), Deployment.load(run.deployment))
    return rebuild(system)[0]


def error_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def fund(run, *accounts, usdc="10000", margin="2000"):
    for a in accounts:
        run("deposit", usdc, "--account", str(a))
    run("operator", "run", "--once")
    for a in accounts:
        run("margin", "add", "BTC", margin, "--account", str(a))
    run("operator", "run", "--once")


def test_orders_match_into_checkpointed_positions(run, rpc_url):
    fund(run, 1, 2)
    assert (
        "order 1: sell 0.5 BTC-USD @ 60,000"
        in run(
            "order", "place", "BTC-USD", "sell", "0.5", "--price", "60000", "--account", "1"
        ).output
    )
    run("order", "place", "BTC", "buy", "0.2", "--price", "60010", "--tif", "ioc", "--account", "2")
    assert "posted checkpoint" in run("operator", "run", "--once").output
    ledger = ledger_of(run, rpc_url)
    assert ledger.position(0, 0).size == -20_000 and ledger.position(1, 0).size == 20_000
    listing = run("order", "list", "--account", "1").output
    assert "open" in listing and "0.2" in listing  # resting with 0.2 of 0.5 filled
    book = run("book", "BTC-USD").output
    assert "60,000" in book and "0.3" in book
    # A restart rebuilds the book from the journal and the ledger; nothing new to post.
    assert "nothing to post" in run("operator", "run", "--once").output
    run("order", "place", "BTC", "buy", "0.3", "--price", "60000", "--account", "2")
    run("operator", "run", "--once")
    assert "filled" in run("order", "list", "--all", "--account", "1").output
    positions = run("positions", "--account", "2").output
    assert "0.5" in positions and "60,000" in positions
    # Reduce-only against the real position (a regression: the pre-check once assumed flat).
    run(
        "order",
        "place",
        "BTC",
        "sell",
        "0.1",
        "--price",
        "60500",
        "--reduce-only",
        "--account",
        "2",
    )
    flat = run(
        "order",
        "place",
        "BTC",
        "buy",
        "0.1",
        "--price",
        "59000",
        "--reduce-only",
        "--account",
        "1",
        ok=False,
    )
    assert "reduce_only_would_increase" not in flat.output  # account 1 is short: buying reduces


def test_flash_crash_isolates_losses(run, rpc_url):
    fund(run, 1, 2, 3)
    run("margin", "add", "ETH", "1000", "--account", "3")  # a bystander in another market
    run("operator", "run", "--once")
    # account 2 goes long 0.5 BTC on 2,000 USDC of margin (15x); account 1 is short.
    run("order", "place", "BTC", "sell", "0.5", "--price", "60000", "--account", "1")
    run("order", "place", "BTC", "buy", "0.5", "--price", "60000", "--tif", "ioc", "--account", "2")
    run("operator", "run", "--once")
    before = ledger_of(run, rpc_url)
    bystander = before.position(2, 1)
    run("oracle", "push", "BTC", "42000")  # -30% in one oracle tick
    out = run("operator", "run", "--once").output
    after = ledger_of(run, rpc_url)
    assert after.position(1, 0) is None  # the long is gone: liquidated/backstopped/deleveraged
    assert after.position(2, 1) == bystander  # other market, other user: untouched
    assert after.account(2).collateral == before.account(2).collateral
    assert "posted checkpoint" in out
    insurance = after.position(INSURANCE_ACCOUNT, 0)
    short = after.position(0, 0)
    assert insurance is not None or short is None or short.size > -50_000
    after.check_invariants()
    m = after.market(0)
    for p in after.positions(market_id=0):
        if p.account_id != INSURANCE_ACCOUNT:
            assert not risk.is_liquidatable(p, m)


def test_order_rejections_are_one_line_errors(run):
    fund(run, 1)
    cases = [
        (["BTC", "buy", "0.1", "--price", "60000.05"], "error[bad_amount]"),  # below the tick
        (["DOGE", "buy", "1", "--price", "1"], "error[unknown_market]"),
        (["BTC", "buy", "100", "--price", "60000"], "error[insufficient_margin]"),
        (["BTC", "buy", "0.000001", "--price", "60000"], "error[bad_amount]"),
    ]
    for args, expected in cases:
        result = run("order", "place", *args, "--account", "1", ok=False)
        assert result.exit_code == 1
        assert error_line(result).startswith(expected), (args, result.output)


def test_order_without_margin_fails(run):
    run("deposit", "100", "--account", "4")
    run("operator", "run", "--once")
    result = run(
        "order", "place", "BTC", "buy", "0.001", "--price", "60000", "--account", "4", ok=False
    )
    assert error_line(result).startswith("error[no_position]")


def test_risk_preview_shows_liquidation_under_shock(run):
    fund(run, 1, 2)
    run("order", "place", "BTC", "sell", "0.5", "--price", "60000", "--account", "1")
    run("order", "place", "BTC", "buy", "0.5", "--price", "60000", "--tif", "ioc", "--account", "2")
    run("operator", "run", "--once")
    assert "yes" in run("risk", "preview", "--shock", "-20%", "--account", "2").output
    assert "no" in run("risk", "preview", "--shock", "+1%", "--account", "2").output
