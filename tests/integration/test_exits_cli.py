"""The escape-hatch CLI against anvil: a forced withdrawal the operator must serve (and then is
claimable), a forced exit, the exits status, a freeze, and `isoperp escape` from L1 alone."""


def test_forced_withdrawal_is_served_and_claimable(run, rpc_url):
    run("deposit", "1000", "--account", "1")
    run("operator", "run", "--once")
    out = run("force-withdraw", "250", "--account", "1").output
    assert "queued as forced request #0" in out
    assert "pending" in run("exits", "status").output
    assert "posted checkpoint" in run("operator", "run", "--once").output
    assert "served" in run("exits", "status").output
    run("devnet", "advance", "601", "--url", rpc_url)
    assert "claimed 250 USDC" in run("claim", "--account", "1").output


def test_forced_exit_closes_the_position_at_the_mark(run, rpc_url):
    for a in (1, 2):
        run("deposit", "10000", "--account", str(a))
    run("operator", "run", "--once")
    for a in (1, 2):
        run("margin", "add", "BTC", "2000", "--account", str(a))
    run("operator", "run", "--once")
    run("order", "place", "BTC", "sell", "0.1", "--price", "60000", "--account", "1")
    run("order", "place", "BTC", "buy", "0.1", "--price", "60000", "--tif", "ioc", "--account", "2")
    run("operator", "run", "--once")
    run("force-exit", "BTC", "--account", "2")
    run("operator", "run", "--once")
    assert "BTC-USD" not in run("positions", "--account", "2").output.split("free collateral")[0]
    run("devnet", "advance", "601", "--url", rpc_url)
    assert "claimed" in run("claim", "--account", "2").output


def test_freeze_then_escape_from_l1(run, rpc_url):
    run("deposit", "1000", "--account", "3")
    run("operator", "run", "--once")
    run("devnet", "advance", "601", "--url", rpc_url)
    early = run("freeze", ok=False)
    assert early.exit_code == 1 and "EscapeHatch_FreezeNotAllowed" in early.output
    run("devnet", "advance", "1801", "--url", rpc_url)
    assert "exchange frozen" in run("freeze", "--account", "4").output
    assert "frozen" in run("exits", "status").output
    out = run("escape", "--account", "3").output
    assert "registered 1,000 USDC" in out and "claim window open" in out
    assert "claim window has ended" not in run("exits", "status").output
    run("devnet", "advance", "601", "--url", rpc_url)
    out = run("escape", "--account", "3").output
    assert "withdrawn to wallet 1,000 USDC" in out
    assert "nothing left to escape" in run("escape", "--account", "3").output


def test_freeze_picks_overdue_deposit(run, rpc_url):
    run("deposit", "1000", "--account", "1")
    run("operator", "run", "--once")
    run("deposit", "250", "--account", "2")  # the operator never includes it
    status = run("exits", "status").output
    assert "oldest unincluded deposit #1 (250 USDC" in status
    assert "deposit freeze possible in" in status
    run("devnet", "advance", "301", "--url", rpc_url)  # past the 300 s forced deadline
    assert "(overdue)" in run("exits", "status").output
    out = run("freeze", "--account", "3").output
    assert "reason 3: a deposit stayed unincluded past the forced deadline" in out
    out = run("escape", "--account", "2").output
    assert "refunded 250 USDC" in out and "withdrawn to wallet 250 USDC" in out


def test_freeze_without_overdue_deposit_uses_liveness(run, rpc_url):
    run("deposit", "1000", "--account", "1")
    run("operator", "run", "--once")
    run("devnet", "advance", "2402", "--url", rpc_url)
    assert "oldest unincluded deposit" not in run("exits", "status").output
    assert "reason 2: nothing finalized" in run("freeze", "--account", "3").output
