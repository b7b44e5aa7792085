"""Fixtures for the contract tests: accounts, MockUSDC, Settlement + its vault and escape hatch,
checkpoint helpers.

Every test runs against a fresh chain state (ape's snapshot isolation). Time only moves forward on
anvil, so helpers always work relative to the current head block.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import ape
import pytest
from ape.exceptions import CustomError
from eth_abi import decode, encode
from eth_utils import to_checksum_address

from isoperp.chain.deploy import create_address
from isoperp.hashing import keccak256
from isoperp.ledger import arith
from isoperp.ledger.model import Account, Exchange, Market, Position
from isoperp.protocol import leaves as L
from isoperp.protocol.batch import batch_hash
from isoperp.protocol.constants import PPM
from isoperp.tree.merkle import SparseMerkleTree, hash_leaf

WINDOW = 600
MIN_BOND = 10**18
FORCED_DEADLINE = 300
LIVENESS = 1800
FORCED_FEE = 10**15
CLAIM_WINDOW = 600
# The claim window of the escape worlds: long, so that a world built once per module (and restored
# by ape's isolation) is still inside its window whatever time other tests moved on (time only moves
# forward). Tests that need the window to end build their world with CLAIM_WINDOW.
LONG_CLAIM_WINDOW = 365 * 24 * 3600
GENESIS_ROOT = keccak256(b"isoperp genesis state root")
EMPTY_BATCH = bytes([2]) + (0).to_bytes(4, "big")  # version 2, zero records
WITHDRAWAL_DEPTH = 32
# The test Settlement's `disputes`: a plain account (test account 6, the `disputer` fixture) that
# calls invalidateFrom directly. DisputeGame tests deploy a Settlement naming a real DisputeGame.
DISPUTER = "0x976EA74026E726554dB657fA54763abd0C3a0aa9"

HEADER_FIELDS = (
    ("seq", "uint64"),
    ("prevHash", "bytes32"),
    ("stateRoot", "bytes32"),
    ("depositCursor", "uint64"),
    ("depositPrefixHash", "bytes32"),
    ("forcedCursor", "uint64"),
    ("forcedPrefixHash", "bytes32"),
    ("withdrawalsRoot", "bytes32"),
    ("withdrawalCount", "uint64"),
    ("withdrawalTotal", "uint128"),
    ("batchHash", "bytes32"),
    ("traceRoot", "bytes32"),
    ("recordCount", "uint32"),
    ("batchLength", "uint32"),
    ("timestamp", "uint64"),
)
HEADER_TYPES = [t for _, t in HEADER_FIELDS]
ZERO32 = b"\x00" * 32


def header_hash(header: dict[str, Any]) -> bytes:
    """checkpointHash = keccak256(abi.encode(header)), computed off-chain."""
    return keccak256(encode(HEADER_TYPES, [header[name] for name, _ in HEADER_FIELDS]))


def header_tuple(header: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(header[name] for name, _ in HEADER_FIELDS)


def withdrawal_leaf(account_id: int, recipient: str, amount: int) -> bytes:
    """keccak256(0x00 ‖ abi.encode(uint32 accountId, address recipient, uint128 amount))."""
    return hash_leaf(encode(["uint32", "address", "uint128"], [account_id, recipient, amount]))


@dataclass
class Withdrawals:
    """The global withdrawals tree up to a checkpoint: the (accountId, recipient, amount) leaves
    appended so far (cumulative) and their tree."""

    leaves: list[tuple[int, str, int]]
    tree: SparseMerkleTree = field(init=False)

    def __post_init__(self) -> None:
        self.tree = SparseMerkleTree(WITHDRAWAL_DEPTH)
        for i, (account_id, recipient, amount) in enumerate(self.leaves):
            self.tree.set(i, withdrawal_leaf(account_id, recipient, amount))

    @property
    def root(self) -> bytes:
        return self.tree.root

    def proof(self, index: int) -> list[bytes]:
        return self.tree.proof(index)


class Checkpoints:
    """Builds and posts checkpoint headers that pass every rule unless a test overrides a field."""

    def __init__(self, settlement: Any, vault: Any, operator: Any, chain: Any) -> None:
        self.settlement = settlement
        self.hatch = ape.project.EscapeHatch.at(settlement.escapeHatch())
        self.vault = vault
        self.operator = operator
        self.chain = chain

    def next_header(self, batch: bytes = EMPTY_BATCH, **overrides: Any) -> dict[str, Any]:
        latest = self.settlement.latestSeq()
        prev = self.settlement.getCheckpoint(latest)
        cursor = overrides.get("depositCursor", prev.depositCursor)
        forced = overrides.get("forcedCursor", prev.forcedCursor)
        forced_hash = (
            bytes(self.hatch.forcedPrefixHash(forced))
            if forced <= self.hatch.forcedRequestCount()
            else ZERO32
        )
        header: dict[str, Any] = {
            "seq": latest + 1,
            "prevHash": bytes(prev.checkpointHash),
            "stateRoot": keccak256(b"state" + (latest + 1).to_bytes(8, "big")),
            "depositCursor": cursor,
            "depositPrefixHash": bytes(self.vault.depositPrefixHash(cursor)),
            "forcedCursor": forced,
            "forcedPrefixHash": forced_hash,
            "withdrawalsRoot": ZERO32,
            "withdrawalCount": 0,
            "withdrawalTotal": 0,
            "batchHash": batch_hash(batch),
            "traceRoot": keccak256(b"trace" + (latest + 1).to_bytes(8, "big")),
            "recordCount": int.from_bytes(batch[1:5], "big") if len(batch) >= 5 else 0,
            "batchLength": len(batch),
            "timestamp": max(prev.timestamp, self.chain.blocks.head.timestamp),
        }
        header.update(overrides)
        return header

    def post(self, header: dict[str, Any], batch: bytes = EMPTY_BATCH, sender: Any = None) -> Any:
        return self.settlement.postCheckpoint(
            header_tuple(header), batch, sender=sender or self.operator
        )

    def post_next(self, batch: bytes = EMPTY_BATCH, **overrides: Any) -> tuple[dict[str, Any], Any]:
        header = self.next_header(batch, **overrides)
        return header, self.post(header, batch)

    def post_withdrawals(self, leaves: Sequence[tuple[int, str, int]]) -> tuple[int, Withdrawals]:
        """Posts a checkpoint whose (cumulative) withdrawals tree holds `leaves`, with their count
        and total; returns (seq, withdrawals)."""
        withdrawals = Withdrawals(list(leaves))
        header, _ = self.post_next(
            withdrawalsRoot=withdrawals.root,
            withdrawalCount=len(withdrawals.leaves),
            withdrawalTotal=sum(amount for _, _, amount in withdrawals.leaves),
        )
        return header["seq"], withdrawals

    def finalize(self) -> None:
        """Moves time past the challenge window of every checkpoint posted so far."""
        self.chain.pending_timestamp += WINDOW
        self.chain.mine()


# ---------------------------------------------------------------- escape hatch: state trees

STATE_DEPTH = 32
EscapeLeaf = Account | Position | Market | Exchange


def make_market(market_id: int, mark: int, funding: int = 0, exp: int = 0) -> Market:
    """A market leaf with devnet-like margins and fees."""
    return Market(
        market_id=market_id,
        mark_price=mark,
        mark_time=0,
        funding_index=funding,
        funding_time=0,
        imf_ppm=50_000,
        mmf_ppm=30_000,
        notional_exp=exp,
        maker_fee_ppm=100,
        taker_fee_ppm=500,
        min_size=1,
        size_step=1,
        price_tick=1,
        open_interest=0,
    )


def leaf_fields(leaf: EscapeLeaf) -> tuple[Any, ...]:
    """The Solidity struct (LeafLib's AccountLeaf / PositionLeaf / MarketLeaf / ExchangeLeaf) of a
    model leaf."""
    return L.solidity_struct(leaf)


def escape_value(leaf: Account | Position, market: Market | None = None) -> int:
    """The reference escape value: free collateral, or max(0, quote - unpaid funding + notional)
    with isoperp.ledger.arith's floor division and notional."""
    if isinstance(leaf, Account):
        return leaf.collateral
    assert market is not None and market.market_id == leaf.market_id
    funding = arith.floor_div(-(market.funding_index - leaf.funding_index) * leaf.size, PPM)
    notional = arith.notional(leaf.size, market.mark_price, market.notional_exp)
    return max(0, leaf.quote + funding + notional)


def leaf_index(leaf: EscapeLeaf) -> int:
    if isinstance(leaf, Exchange):
        return L.EXCHANGE_INDEX
    if isinstance(leaf, Account):
        return L.account_index(leaf.account_id)
    if isinstance(leaf, Position):
        return L.position_index(leaf.account_id, leaf.market_id)
    return L.market_index(leaf.market_id)


def leaf_bytes(leaf: EscapeLeaf) -> bytes:
    if isinstance(leaf, Exchange):
        return L.encode_exchange(leaf)
    if isinstance(leaf, Account):
        return L.encode_account(leaf)
    if isinstance(leaf, Position):
        return L.encode_position(leaf)
    return L.encode_market(leaf)


class StateTree:
    """A depth-32 state tree over model leaves (the operator's encoders and Merkle tree)."""

    def __init__(self, leaves: Sequence[EscapeLeaf]) -> None:
        self.leaves = list(leaves)
        self.tree = SparseMerkleTree(STATE_DEPTH)
        for leaf in self.leaves:
            self.tree.set(leaf_index(leaf), hash_leaf(leaf_bytes(leaf)))

    @property
    def root(self) -> bytes:
        return self.tree.root

    def proof(self, leaf: EscapeLeaf) -> list[bytes]:
        return self.tree.proof(leaf_index(leaf))

    def market(self, market_id: int) -> Market:
        return next(m for m in self.leaves if isinstance(m, Market) and m.market_id == market_id)

    def witness(self, position: Position) -> tuple[Any, ...]:
        """ISettlement.PositionWitness(position, proof)."""
        return (leaf_fields(position), self.proof(position))

    def markets(self) -> list[Market]:
        return [m for m in self.leaves if isinstance(m, Market)]

    def claims_total(self) -> int:
        """claimsTotal: every account's collateral plus every position's escape value."""
        total = 0
        for leaf in self.leaves:
            if isinstance(leaf, Account):
                total += escape_value(leaf)
            elif isinstance(leaf, Position):
                total += escape_value(leaf, self.market(leaf.market_id))
        return total


@pytest.fixture(scope="session")
def deployer(accounts: Any) -> Any:
    return accounts[0]


@pytest.fixture(scope="session")
def operator(accounts: Any) -> Any:
    return accounts[1]


@pytest.fixture(scope="session")
def alice(accounts: Any) -> Any:
    return accounts[2]


@pytest.fixture(scope="session")
def bob(accounts: Any) -> Any:
    return accounts[3]


@pytest.fixture(scope="session")
def oracle(accounts: Any) -> Any:
    return accounts[4]


@pytest.fixture(scope="session")
def stranger(accounts: Any) -> Any:
    return accounts[5]


@pytest.fixture(scope="session")
def disputer(accounts: Any) -> Any:
    """The plain account the test Settlement names as its `disputes`."""
    assert accounts[6].address == DISPUTER
    return accounts[6]


def settlement_args(
    token: Any, operator: Any, oracle: Any, root: bytes = GENESIS_ROOT, /, **overrides: Any
) -> list[Any]:
    """Constructor arguments of the test Settlement (devnet timings), with named overrides."""
    args: dict[str, Any] = {
        "token": token,
        "operator": operator,
        "oracle": oracle,
        "disputes": DISPUTER,
        "minBond": MIN_BOND,
        "challengeWindow": WINDOW,
        "forcedDeadline": FORCED_DEADLINE,
        "livenessTimeout": LIVENESS,
        "forcedRequestFee": FORCED_FEE,
        "claimWindow": CLAIM_WINDOW,
        "genesisStateRoot": root,
        "genesisMarketLeaves": [],  # published in GenesisMarketsListed, not checked on chain
        "genesisMarketSymbols": [],
    }
    args.update(overrides)
    names = ("challengeWindow", "forcedDeadline", "livenessTimeout", "claimWindow")
    periods = tuple(args.pop(name) for name in names)
    values = list(args.values())
    values.insert(5, periods)  # ISettlement.Periods, after minBond
    return values


@pytest.fixture(scope="session")
def usdc(project: Any, deployer: Any) -> Any:
    return deployer.deploy(project.MockUSDC)


@pytest.fixture(scope="session")
def settlement(project: Any, deployer: Any, operator: Any, oracle: Any, usdc: Any) -> Any:
    return deployer.deploy(project.Settlement, *settlement_args(usdc, operator, oracle))


@pytest.fixture(scope="session")
def vault(project: Any, settlement: Any) -> Any:
    return project.CollateralVault.at(settlement.vault())


@pytest.fixture(scope="session")
def hatch(project: Any, settlement: Any) -> Any:
    return project.EscapeHatch.at(settlement.escapeHatch())


# Fixtures that change chain state are function-scoped: ape keeps the state a session fixture
# creates for every later test, which would make tests depend on their order.


@pytest.fixture
def bonded(settlement: Any, operator: Any) -> Any:
    """The settlement with the operator's minimum bond posted."""
    settlement.postBond(sender=operator, value=MIN_BOND)
    return settlement


@pytest.fixture
def checkpoints(bonded: Any, vault: Any, operator: Any, chain: Any) -> Checkpoints:
    """Checkpoint helper for the bonded settlement."""
    return Checkpoints(bonded, vault, operator, chain)


@pytest.fixture
def unbonded_checkpoints(settlement: Any, vault: Any, operator: Any, chain: Any) -> Checkpoints:
    """Checkpoint helper for the settlement before any bond was posted."""
    return Checkpoints(settlement, vault, operator, chain)


# Factories are session-scoped: creating one changes no chain state, and module-scoped fixtures
# (built once per module, restored by ape's isolation before every test) may use them.
@pytest.fixture(scope="session")
def deploy_settlement(project: Any, deployer: Any, operator: Any, oracle: Any, chain: Any) -> Any:
    """Deploys a bonded Settlement over `token` (genesis root `root`); returns (settlement, vault,
    Checkpoints)."""

    def deploy(
        token: Any, root: bytes = GENESIS_ROOT, claim_window: int = CLAIM_WINDOW
    ) -> tuple[Any, Any, Checkpoints]:
        settlement = deployer.deploy(
            project.Settlement,
            *settlement_args(token, operator, oracle, root, claimWindow=claim_window),
        )
        settlement.postBond(sender=operator, value=MIN_BOND)
        vault = project.CollateralVault.at(settlement.vault())
        return settlement, vault, Checkpoints(settlement, vault, operator, chain)

    return deploy


@pytest.fixture(scope="session")
def deploy_game(project: Any, deployer: Any, operator: Any, oracle: Any) -> Any:
    """Factory: a Settlement over `token` whose `disputes` is the DisputeGame deployed right after
    it (address precomputed from the deployer's nonce, as isoperp.chain.deploy does); returns
    (settlement, game)."""

    def deploy(
        token: Any,
        root: bytes = GENESIS_ROOT,
        record_types: list[int] | None = None,
        verifiers: list[Any] | None = None,
    ) -> tuple[Any, Any]:
        predicted = create_address(deployer.address, deployer.nonce + 1)
        args = settlement_args(token, operator, oracle, root, disputes=predicted)
        settlement = deployer.deploy(project.Settlement, *args)
        game = deployer.deploy(
            project.DisputeGame, settlement, record_types or [], verifiers or []
        )
        assert game.address == predicted == settlement.disputes()
        return settlement, game

    return deploy


def fund_and_deposit(token: Any, vault: Any, who: Any, amount: int) -> int:
    """Mints `amount` to `who` and deposits it for `who`; returns the queue index."""
    token.mint(who, amount, sender=who)
    if hasattr(token, "approve"):
        token.approve(vault, amount, sender=who)
    return int(vault.deposit(who, amount, sender=who).return_value)


def hatch_of(settlement: Any) -> Any:
    """The EscapeHatch the Settlement created."""
    return ape.project.EscapeHatch.at(settlement.escapeHatch())


def freeze_now(settlement: Any, by: Any, chain: Any) -> Any:
    """Freezes through an overdue forced request (a no-op request by `by`); returns the receipt."""
    hatch = hatch_of(settlement)
    receipt = hatch.requestForcedWithdrawal(0, 1, sender=by, value=FORCED_FEE)
    chain.pending_timestamp = chain.blocks[receipt.block_number].timestamp + FORCED_DEADLINE
    return hatch.freeze(sender=by)


def end_window(hatch: Any, chain: Any) -> None:
    """Moves time to the end of the claim window (registration closed, payouts open)."""
    end = int(hatch.claimWindowEnd())
    if chain.blocks.head.timestamp < end:
        chain.mine(timestamp=end)


@pytest.fixture(scope="session")
def escape_world(deploy_settlement: Any, usdc: Any, stranger: Any, chain: Any) -> Any:
    """Factory: a fresh bonded Settlement whose checkpoint 1 (finalized) commits `tree`, after
    `deposits` [(who, amount)] of which the first `deposit_cursor` are included; frozen (and every
    market of `tree` proven) unless `freeze=False` (`prove_markets=False`); claim window
    `claim_window` (default LONG_CLAIM_WINDOW). Returns a namespace
    (settlement, hatch, vault, checkpoints, tree, token, and the freeze receipt)."""

    def build(
        tree: StateTree,
        deposits: Sequence[tuple[Any, int]],
        *,
        deposit_cursor: int | None = None,
        token: Any = None,
        freeze: bool = True,
        prove_markets: bool = True,
        claim_window: int = LONG_CLAIM_WINDOW,
    ) -> SimpleNamespace:
        token = token or usdc
        settlement, vault, cps = deploy_settlement(token, GENESIS_ROOT, claim_window)
        for who, amount in deposits:
            fund_and_deposit(token, vault, who, amount)
        cps.post_next(
            stateRoot=tree.root,
            depositCursor=len(deposits) if deposit_cursor is None else deposit_cursor,
        )
        cps.finalize()
        receipt = freeze_now(settlement, stranger, chain) if freeze else None
        hatch = hatch_of(settlement)
        if freeze and prove_markets:
            for market in tree.markets():
                hatch.proveMarket(leaf_fields(market), tree.proof(market), sender=stranger)
        return SimpleNamespace(
            settlement=settlement,
            hatch=hatch,
            vault=vault,
            checkpoints=cps,
            tree=tree,
            token=token,
            freeze=receipt,
        )

    return build


@pytest.fixture
def funded_vault(vault: Any, usdc: Any, alice: Any, bob: Any) -> Any:
    """The vault holding 1,000,000 USDC from two deposits (alice 600k, bob 400k)."""
    for who, amount in ((alice, 600_000 * 10**6), (bob, 400_000 * 10**6)):
        usdc.mint(who, amount, sender=who)
        usdc.approve(vault, amount, sender=who)
        vault.deposit(who, amount, sender=who)
    return vault


# Revert tests of view/pure functions send them as transactions (`fn.transact(..., sender=...)`):
# anvil 1.7.1 answers a reverting eth_call with "custom error 0x<selector>: <data as lossy text>",
# which ape 0.8 cannot decode, while a reverted transaction's error is decoded from its trace.
# ape also leaves two kinds of transaction reverts undecoded (raw 0x data): reverts during a
# deployment (no contract address yet) and errors bubbled up through a contract whose ABI does not
# declare them. For those the raw data is decoded here against the expected error's ABI, selector
# first, so the assertion is exactly as strict.
def _decode_raw(error: Any, exc: Any) -> dict[str, Any] | None:
    raw = str(exc.revert_message)
    if not raw.startswith("0x"):
        return None
    data = bytes.fromhex(raw[2:])
    abi = error.abi
    if data[:4] != keccak256(abi.selector.encode())[:4]:
        return None
    types = [i.canonical_type for i in abi.inputs]
    values = decode(types, data[4:])
    return {
        i.name: to_checksum_address(v) if t == "address" else v
        for i, t, v in zip(abi.inputs, types, values, strict=True)
    }


@contextmanager
def _strict_reverts(error: Any, **inputs: Any) -> Iterator[Any]:
    """ape.reverts(error, **inputs), plus: the revert must decode to exactly that custom error and
    every named input must exist (ape.reverts lets undecoded reverts and misspelled names pass)."""
    with ape.reverts(error, **inputs) as info:
        yield info
    exc = info.value
    if isinstance(exc, CustomError):
        got = type(exc).__name__
        assert got == error.__name__, f"expected {error.__name__}, got {got}"
        actual_inputs = exc.inputs
    elif str(exc.revert_message).startswith("custom error 0x"):
        raise AssertionError(
            f"expected {error.__name__}: an eth_call revert cannot be decoded (anvil returns it "
            "as lossy text); send the view/pure call as a transaction: fn.transact(..., sender=...)"
        )
    else:
        decoded = _decode_raw(error, exc)
        assert decoded is not None, f"expected {error.__name__}, got {exc!r}"
        actual_inputs = decoded
    for name, expected in inputs.items():
        assert name in actual_inputs, f"{error.__name__} has no input {name!r}: {actual_inputs}"
        actual = actual_inputs[name]
        assert actual == expected, f"{name}: expected {expected!r}, got {actual!r}"


@pytest.fixture(scope="session")
def reverts() -> Any:
    """Strict custom-error assertion: `with reverts(contract.ErrorName, arg=value): ...`."""
    return _strict_reverts


@pytest.fixture(scope="session")
def consts() -> SimpleNamespace:
    """The constants and pure helpers of this conftest (test modules cannot import conftest)."""
    return SimpleNamespace(
        WINDOW=WINDOW,
        MIN_BOND=MIN_BOND,
        FORCED_DEADLINE=FORCED_DEADLINE,
        LIVENESS=LIVENESS,
        FORCED_FEE=FORCED_FEE,
        CLAIM_WINDOW=CLAIM_WINDOW,
        DISPUTER=DISPUTER,
        settlement_args=settlement_args,
        make_market=make_market,
        leaf_fields=leaf_fields,
        leaf_index=leaf_index,
        escape_value=escape_value,
        StateTree=StateTree,
        fund_and_deposit=fund_and_deposit,
        freeze_now=freeze_now,
        hatch_of=hatch_of,
        end_window=end_window,
        GENESIS_ROOT=GENESIS_ROOT,
        EMPTY_BATCH=EMPTY_BATCH,
        ZERO32=ZERO32,
        HEADER_FIELDS=HEADER_FIELDS,
        header_hash=header_hash,
        header_tuple=header_tuple,
        withdrawal_leaf=withdrawal_leaf,
        Withdrawals=Withdrawals,
        Checkpoints=Checkpoints,
    )
