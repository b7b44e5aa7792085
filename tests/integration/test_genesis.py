"""Genesis from the deployment (v2 spec D8): the deploy step's market list is published on L1 and
every reader rebuilds the genesis state from there, with only an RPC URL and the Settlement's
address; a third market with its own grid, exponent and fees trades and rebuilds from L1."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from isoperp.chain.client import ChainClient, Web3Deployer, connect
from isoperp.chain.contracts import System
from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.chain.deployment import Deployment
from isoperp.chain.genesis import constructor_args, market_config, read_genesis
from isoperp.chain.l1 import genesis_ledger, rebuild
from isoperp.cli.main import cli
from isoperp.demo import USDC, _deposit
from isoperp.devnet import devnet_account
from isoperp.errors import ProtocolError
from isoperp.ledger.markets import DEVNET_MARKETS
from isoperp.ledger.model import Market
from isoperp.ledger.transitions import MarginTransfer, PlaceOrder
from isoperp.protocol.constants import TIF_IOC
from isoperp.protocol.signing import sign_request
from isoperp.service.operator import OperatorService

# lot and tick of their own, notionalExp -1 (notionals floor), a maker rebate, a higher taker fee
SOL = Market(2, 15_000, 0, 0, 0, 100_000, 60_000, -1, -200, 700, 2, 2, 5, 0, "SOL-USD")
MARKETS = (*DEVNET_MARKETS, SOL)


def error_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output  # one line, no traceback
    return lines[0]


def _deploy(rpc_url, markets):
    client = ChainClient(connect(rpc_url), devnet_account(0))
    params = DeployParams(markets=markets)
    return System(client, deploy_system(Web3Deployer(client), params, rpc_url=rpc_url))


def test_read_genesis_from_rpc_and_address_alone_succeeds(rpc_url):
    system = _deploy(rpc_url, MARKETS)
    genesis = read_genesis(connect(rpc_url), system.deployment.settlement)  # no deployment file
    assert genesis.markets == MARKETS
    assert [m.symbol for m in genesis.markets] == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert genesis.block == system.deployment.deploy_block
    assert "0x" + genesis.state_root.hex() == system.deployment.genesis_state_root
    ledger = genesis_ledger(system)
    assert ledger.markets == MARKETS and ledger.market(2).price_tick == 5
    assert "0x" + ledger.state_root.hex() == system.deployment.genesis_state_root


def test_deploy_names_the_dispute_game_succeeds(rpc_url):
    """The deploy precomputes the DisputeGame's address for the Settlement and deploys it there;
    the deployment file and System know it."""
    system = _deploy(rpc_url, MARKETS)
    disputes = system.deployment.disputes
    assert disputes and system.settlement.functions.disputes().call() == disputes
    assert system.disputes.address == disputes
    assert system.disputes.functions.settlement().call() == system.deployment.settlement
    assert system.client.w3.eth.get_code(disputes)
    reloaded = System(system.client, dataclasses.replace(system.deployment, disputes=""))
    assert reloaded.disputes.address == disputes  # older files: read from the Settlement


def test_third_market_trades_and_rebuilds_from_l1_succeeds(rpc_url, inbox):
    system = _deploy(rpc_url, MARKETS)
    alice, bob = devnet_account(1), devnet_account(2)
    for who in (alice, bob):
        _deposit(system, who, 10_000 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    for who, account_id in ((alice, 0), (bob, 1)):
        margin = MarginTransfer(account_id, 2, 2_000 * USDC, 0, b"")
        inbox.submit(sign_request(bytes(who.key), system.domain, margin))
    service.run_once()
    # 40 lots at 15,005 ticks: notional floor(40 * 15,005 / 10) = 60,020 micro-USDC
    sell = PlaceOrder(0, 2, False, 15_005, 40, 0, 0, 1, 0, b"")
    buy = PlaceOrder(1, 2, True, 15_005, 40, TIF_IOC, 0, 1, 0, b"")
    inbox.submit(sign_request(bytes(alice.key), system.domain, sell))
    inbox.submit(sign_request(bytes(bob.key), system.domain, buy))
    report = service.run_once()
    assert report.fills == 1 and report.posted is not None
    assert service.ledger.position(1, 2).size == 40
    assert service.ledger.position(1, 2).quote == 2_000 * USDC - 60_020 - 43  # taker fee ceil
    assert service.ledger.position(0, 2).quote == 2_000 * USDC + 60_020 + 12  # rebate floors
    ledger, checkpoints = rebuild(system)
    assert ledger.state_root == service.ledger.state_root == checkpoints[-1].header.state_root
    assert ledger.market(2) == service.ledger.market(2)
    assert ledger.market(2).open_interest == 40


def test_genesis_markets_not_matching_the_root_raise(rpc_url):
    """A Settlement whose published markets do not build its genesis root is refused."""
    client = ChainClient(connect(rpc_url), devnet_account(0))
    good = _deploy(rpc_url, DEVNET_MARKETS)
    leaves, symbols = constructor_args(MARKETS)  # one market more than the root has
    settlement, block = Web3Deployer(client).deploy_contract(
        "Settlement",
        good.deployment.token,
        client.address,
        good.deployment.oracle,
        good.deployment.disputes,  # not this Settlement's dispute game: nothing disputes here
        good.deployment.min_bond,
        (
            good.deployment.challenge_window,
            good.deployment.forced_deadline,
            good.deployment.liveness_timeout,
            good.deployment.claim_window,
        ),
        good.deployment.forced_request_fee,
        bytes.fromhex(good.deployment.genesis_state_root[2:]),
        leaves,
        symbols,
    )
    with pytest.raises(ProtocolError) as info:
        read_genesis(connect(rpc_url), settlement)
    assert info.value.code == "genesis" and "genesis markets build root" in info.value.message
    bad = dataclasses.replace(good.deployment, settlement=settlement, deploy_block=block)
    with pytest.raises(ProtocolError):
        genesis_ledger(System(client, bad))


def test_cli_deploy_with_market_file_rebuilds_from_l1_succeeds(tmp_path, rpc_url):
    markets_file = tmp_path / "markets.json"
    markets_file.write_text(json.dumps({"markets": [market_config(m) for m in MARKETS]}))
    deployment = tmp_path / "deployment.json"
    result = CliRunner().invoke(
        cli, ["--deployment", str(deployment), "deploy", "--rpc", rpc_url,
              "--markets", str(markets_file)]
    )
    assert result.exit_code == 0, result.output
    assert "BTC-USD, ETH-USD, SOL-USD" in result.output
    settlement = Deployment.load(deployment).settlement
    assert read_genesis(connect(rpc_url), settlement).markets == MARKETS


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.toml", "[[markets]]\nmarketId = 0\n", "market 0: missing markPrice"),
        ("m.json", json.dumps([{**market_config(SOL), "priceTick": 0}]), "priceTick = 0"),
        ("m.json", json.dumps([{**market_config(SOL), "mmfPpm": 200_000}]), "exceeds imfPpm"),
        ("m.json", "{not json", "not valid JSON"),
        ("m.txt", "", "must end in .json or .toml"),
        ("absent.toml", None, "cannot read the market file"),
    ],
)
def test_cli_deploy_bad_market_file_fails_with_one_line(tmp_path, rpc_url, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    deployment = tmp_path / "deployment.json"
    result = CliRunner().invoke(
        cli, ["--deployment", str(deployment), "deploy", "--rpc", rpc_url, "--markets", str(path)]
    )
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("error[bad_markets]") and message in line, line
    assert not deployment.exists()
