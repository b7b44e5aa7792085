"""EscapeHatch after a freeze: proveMarket and escape (account and position leaves) against the
escape checkpoint's state root (leaves built by the operator's encoders and Merkle tree), claims
registered during the claim window, the haircut against the registered total, refundDeposit,
withdrawEscaped, and every way a proof or a claim can be wrong."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from isoperp.ledger.model import Account, Position
from isoperp.protocol import leaves as L
from isoperp.tree.merkle import compute_root, hash_leaf, hash_node

USDC = 10**6
NOT_A_TOKEN_REASON = 0  # MisbehavingToken.Mode.Normal
REVERT_EMPTY = 3  # MisbehavingToken.Mode.RevertEmpty


def scenario(consts: Any, alice: Any, bob: Any, *, alice_collateral: int = 300_000) -> Any:
    """Two accounts, two markets (one with a negative notional exponent and a moved funding
    index), four positions: alice's two in profit, bob's short in market 0 in bad debt."""
    m0 = consts.make_market(0, mark=650_000)
    m1 = consts.make_market(1, mark=350_003, funding=2_500_000, exp=-1)
    a0 = Account(0, alice.address, alice_collateral * USDC, 3)
    a1 = Account(1, bob.address, 150_000 * USDC, 0)
    p00 = Position(0, 0, 100_000, 10_000 * USDC - 60_000_000_000, 60_000_000_000, 0)
    p01 = Position(0, 1, -30_001, 1_500 * USDC, -1_050_000_000, 1_000_000)
    p10 = Position(1, 0, -50_000, 32_000_000_000, -30_000_000_000, 0)  # equity -500 USDC
    p11 = Position(1, 1, 7, 1_234_567, 0, 0)
    tree = consts.StateTree([m0, m1, a0, a1, p00, p01, p10, p11])
    return SimpleNamespace(tree=tree, a0=a0, a1=a1, p00=p00, p01=p01, p10=p10, p11=p11, m0=m0)


# The worlds are module-scoped: built once, and ape's isolation restores the chain to them before
# every test, so no test sees another's escapes.
@pytest.fixture(scope="module")
def s(consts: Any, alice: Any, bob: Any) -> Any:
    return scenario(consts, alice, bob)


@pytest.fixture(scope="module")
def world(escape_world: Any, s: Any, alice: Any, bob: Any) -> Any:
    """Frozen at checkpoint 1 = `s.tree`; the vault (1M USDC) covers every claim (no haircut)."""
    return escape_world(s.tree, [(alice, 600_000 * USDC), (bob, 400_000 * USDC)])


@pytest.fixture(scope="module", autouse=True)
def _build_worlds_first(
    world: Any, refund_world: Any, reverts: Any, project: Any, deployer: Any
) -> None:
    """Builds every module-scoped world, after the session fixtures the tests use, before any test
    runs: ape's isolation then snapshots them once instead of rebuilding them."""


def _account(consts: Any, tree: Any, a: Account) -> tuple[Any, list[bytes]]:
    return consts.leaf_fields(a), tree.proof(a)


def test_scenario_values_succeeds(s: Any, consts: Any) -> None:
    v = consts.escape_value
    assert v(s.p00, s.m0) == 15_000 * USDC
    # funding floor(-(2.5e6 - 1e6) * -30001 / 1e6) = floor(45001.5) = 45001;
    # notional floor(-30001 * 350003 / 10) = floor(-1050044000.3) = -1050044001.
    assert v(s.p01, s.tree.market(1)) == 1_500 * USDC + 45_001 - 1_050_044_001
    assert v(s.p10, s.m0) == 0  # bad debt
    assert v(s.p11, s.tree.market(1)) == 1_234_567 - 18 + 245_002
    assert s.tree.claims_total() < 1_000_000 * USDC


# ---------------------------------------------------------------- proveMarket


def test_proveMarket_caches_market_succeeds(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any
) -> None:
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], prove_markets=False)
    m1 = s.tree.market(1)
    assert w.hatch.escapeMarket(1) == (0, 0, 0, False)
    receipt = w.hatch.proveMarket(consts.leaf_fields(m1), s.tree.proof(m1), sender=stranger)
    assert receipt.events == [w.hatch.MarketProven(1, 350_003, 2_500_000, -1)]
    assert w.hatch.escapeMarket(1) == (350_003, 2_500_000, -1, True)


def test_proveMarket_twice_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any
) -> None:
    with reverts(world.hatch.EscapeHatch_MarketAlreadyProven, marketId=0):
        world.hatch.proveMarket(consts.leaf_fields(s.m0), s.tree.proof(s.m0), sender=stranger)


def test_proveMarket_tampered_market_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    # A higher mark price (alice is long): the leaf no longer matches the escape root.
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], prove_markets=False)
    fields = consts.leaf_fields(s.m0)
    pumped = (fields[0], fields[1] * 2, *fields[2:])
    index = consts.leaf_index(s.m0)
    with reverts(w.hatch.EscapeHatch_InvalidStateProof, index=index, root=s.tree.root):
        w.hatch.proveMarket(pumped, s.tree.proof(s.m0), sender=stranger)


def test_proveMarket_out_of_range_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], prove_markets=False)
    fields = (64, *consts.leaf_fields(s.m0)[1:])
    with reverts(w.hatch.LeafLib_MarketOutOfRange, marketId=64, limit=64):
        w.hatch.proveMarket(fields, s.tree.proof(s.m0), sender=stranger)


def test_proveMarket_before_freeze_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], freeze=False)
    with reverts(w.hatch.EscapeHatch_NotFrozen):
        w.hatch.proveMarket(consts.leaf_fields(s.m0), s.tree.proof(s.m0), sender=stranger)


# ---------------------------------------------------------------- escape: the account leaf


def test_escape_account_credits_owner_succeeds(
    world: Any, s: Any, consts: Any, alice: Any, stranger: Any
) -> None:
    hatch = world.hatch
    value = s.a0.collateral
    # Anyone may submit; the owner in the leaf gets the claim.
    receipt = hatch.escape(*_account(consts, s.tree, s.a0), [], sender=stranger)
    assert receipt.events == [
        hatch.AccountEscaped(0, alice, value),
        hatch.ClaimRegistered(alice, value, value),
    ]
    assert receipt.return_value == value
    assert hatch.registeredOf(alice) == value
    assert hatch.registeredOf(stranger) == 0
    assert hatch.creditOf(alice) == 0
    assert hatch.isEscaped(consts.leaf_index(s.a0))
    assert not hatch.isEscaped(consts.leaf_index(s.a1))
    assert not hatch.isEscaped(consts.leaf_index(s.p00))
    assert (hatch.pool(), hatch.registeredTotal()) == (1_000_000 * USDC, value)
    assert hatch.owedTo(alice) == value


def test_checkEscape_returns_value_succeeds(world: Any, s: Any, consts: Any) -> None:
    tree = s.tree
    assert world.hatch.checkEscape(*_account(consts, tree, s.a1), []) == s.a1.collateral
    v = s.a0.collateral + consts.escape_value(s.p01, tree.market(1))
    assert world.hatch.checkEscape(*_account(consts, tree, s.a0), [tree.witness(s.p01)]) == v


def test_escape_account_twice_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any
) -> None:
    hatch = world.hatch
    hatch.escape(*_account(consts, s.tree, s.a0), [], sender=stranger)
    index = consts.leaf_index(s.a0)
    with reverts(hatch.EscapeHatch_AlreadyEscaped, index=index):
        hatch.escape(*_account(consts, s.tree, s.a0), [], sender=stranger)
    with reverts(hatch.EscapeHatch_AlreadyEscaped, index=index):
        hatch.checkEscape.transact(*_account(consts, s.tree, s.a0), [], sender=stranger)


def test_escape_before_freeze_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], deposit_cursor=1, freeze=False)
    with reverts(w.hatch.EscapeHatch_NotFrozen):
        w.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=alice)
    with reverts(w.hatch.EscapeHatch_NotFrozen):
        w.hatch.escape(*_account(consts, s.tree, s.a0), [s.tree.witness(s.p00)], sender=alice)
    with reverts(w.hatch.EscapeHatch_NotFrozen):
        w.hatch.refundDeposit(0, alice, 600_000 * USDC, 0, sender=alice)


def test_escape_garbage_proof_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any
) -> None:
    hatch = world.hatch
    root = s.tree.root
    garbage = [bytes([i + 1]) * 32 for i in range(32)]
    with reverts(hatch.EscapeHatch_InvalidStateProof, index=0, root=root):
        hatch.escape(consts.leaf_fields(s.a0), garbage, [], sender=stranger)
    zeros = [b"\x00" * 32] * 32
    with reverts(hatch.EscapeHatch_InvalidStateProof, index=0, root=root):
        hatch.escape(consts.leaf_fields(s.a0), zeros, [], sender=stranger)


def test_escape_inflated_leaf_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any
) -> None:
    inflated = Account(0, s.a0.owner, s.a0.collateral + 1, s.a0.nonce)
    other_owner = Account(0, stranger.address, s.a0.collateral, s.a0.nonce)
    for leaf in (inflated, other_owner):
        with reverts(world.hatch.EscapeHatch_InvalidStateProof, index=0, root=s.tree.root):
            world.hatch.escape(consts.leaf_fields(leaf), s.tree.proof(s.a0), [], sender=stranger)


def test_escape_other_accounts_proof_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any
) -> None:
    # Bob's leaf with alice's proof: proven at bob's index (64), it leads elsewhere.
    with reverts(world.hatch.EscapeHatch_InvalidStateProof, index=64, root=s.tree.root):
        world.hatch.escape(consts.leaf_fields(s.a1), s.tree.proof(s.a0), [], sender=stranger)


@pytest.mark.parametrize("length", [0, 31, 33])
def test_escape_wrong_proof_length_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any, length: int
) -> None:
    proof = [*s.tree.proof(s.a0), b"\x00" * 32][:length]
    with reverts(world.hatch.MerkleProof_WrongLength, got=length, depth=32):
        world.hatch.escape(consts.leaf_fields(s.a0), proof, [], sender=stranger)
    position, position_proof = s.tree.witness(s.p00)
    bad = [*position_proof, b"\x00" * 32][:length]
    with reverts(world.hatch.MerkleProof_WrongLength, got=length, depth=32):
        world.hatch.escape(*_account(consts, s.tree, s.a0), [(position, bad)], sender=stranger)


def test_escape_aliased_index_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any
) -> None:
    # accountId 2^24 + 1 would shift into the kind bits and alias another leaf's index (the
    # position kind); ids are bounded before any index is formed.
    for account_id in (2**24 + 1, 2**26, 2**32 - 1):
        leaf = (account_id, s.a0.owner, s.a0.collateral, s.a0.nonce)
        with reverts(world.hatch.LeafLib_AccountOutOfRange, accountId=account_id, limit=2**24):
            world.hatch.escape(leaf, s.tree.proof(s.a0), [], sender=stranger)


def test_escape_internal_node_as_leaf_reverts(
    world: Any, s: Any, consts: Any, stranger: Any, reverts: Any
) -> None:
    # The node just above alice's account leaf is a genuine internal node with a valid 31-sibling
    # proof; offered as a leaf, the proof length gives it away. (A struct is always hashed with the
    # 0x00 leaf salt, so no leaf encoding ever equals a 0x01-salted node either.)
    proof = s.tree.proof(s.a0)
    node = hash_node(hash_leaf(L.encode_account(s.a0)), proof[0])
    assert compute_root(node, 0, proof[1:], 31) == s.tree.root
    with reverts(world.hatch.MerkleProof_WrongLength, got=31, depth=32):
        world.hatch.escape(consts.leaf_fields(s.a0), proof[1:], [], sender=stranger)


def test_escape_insurance_account_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    # The insurance account (owner 0) holds the exchange's own positions: not a claim.
    insurance = Account(2**24 - 1, "0x" + "00" * 20, 0, 0)
    position = Position(2**24 - 1, 0, 5, 1_000, 0, 0)
    tree = consts.StateTree([*s.tree.leaves, insurance, position])
    w = escape_world(tree, [(alice, 600_000 * USDC)])
    with reverts(w.hatch.EscapeHatch_NoOwner, accountId=2**24 - 1):
        w.hatch.escape(
            consts.leaf_fields(insurance),
            tree.proof(insurance),
            [tree.witness(position)],
            sender=stranger,
        )


# ---------------------------------------------------------------- escape: positions


def test_escape_account_and_positions_credits_owner_succeeds(
    world: Any, s: Any, consts: Any, alice: Any, stranger: Any
) -> None:
    hatch, tree = world.hatch, s.tree
    v00 = consts.escape_value(s.p00, tree.market(0))
    v01 = consts.escape_value(s.p01, tree.market(1))
    va = s.a0.collateral
    receipt = hatch.escape(
        *_account(consts, tree, s.a0),
        [tree.witness(s.p00), tree.witness(s.p01)],
        sender=stranger,
    )
    assert receipt.events == [
        hatch.AccountEscaped(0, alice, va),
        hatch.PositionEscaped(0, 0, alice, v00),
        hatch.PositionEscaped(0, 1, alice, v01),
        hatch.ClaimRegistered(alice, va + v00 + v01, va + v00 + v01),
    ]
    assert receipt.return_value == va + v00 + v01
    assert hatch.registeredOf(alice) == va + v00 + v01
    for leaf in (s.a0, s.p00, s.p01):
        assert hatch.isEscaped(consts.leaf_index(leaf))
    # Bob shares alice's escaped word (accounts 0 and 1): his leaves are untouched.
    for leaf in (s.a1, s.p10, s.p11):
        assert not hatch.isEscaped(consts.leaf_index(leaf))
    # Market and exchange leaves never escape.
    assert not hatch.isEscaped(consts.leaf_index(s.m0))


def test_escape_forgotten_position_later_succeeds(
    world: Any, s: Any, consts: Any, bob: Any
) -> None:
    # The account leaf escapes with the first call; a later call escapes only the new position.
    hatch, tree = world.hatch, s.tree
    hatch.escape(*_account(consts, tree, s.a1), [], sender=bob)
    receipt = hatch.escape(*_account(consts, tree, s.a1), [tree.witness(s.p11)], sender=bob)
    v11 = consts.escape_value(s.p11, tree.market(1))
    total = s.a1.collateral + v11
    assert receipt.events == [
        hatch.PositionEscaped(1, 1, bob, v11),
        hatch.ClaimRegistered(bob, v11, total),
    ]
    assert hatch.registeredOf(bob) == s.a1.collateral + v11


def test_escape_bad_debt_position_pays_zero_succeeds(
    world: Any, s: Any, consts: Any, bob: Any, reverts: Any
) -> None:
    hatch, tree = world.hatch, s.tree
    hatch.escape(*_account(consts, tree, s.a1), [], sender=bob)
    assert consts.escape_value(s.p10, tree.market(0)) == 0
    assert hatch.checkEscape(*_account(consts, tree, s.a1), [tree.witness(s.p10)]) == 0
    receipt = hatch.escape(*_account(consts, tree, s.a1), [tree.witness(s.p10)], sender=bob)
    assert receipt.events == [
        hatch.PositionEscaped(1, 0, bob, 0),
        hatch.ClaimRegistered(bob, 0, s.a1.collateral),
    ]
    assert hatch.registeredOf(bob) == s.a1.collateral
    index = consts.leaf_index(s.p10)
    assert hatch.isEscaped(index)
    with reverts(hatch.EscapeHatch_AlreadyEscaped, index=index):
        hatch.escape(*_account(consts, tree, s.a1), [tree.witness(s.p10)], sender=bob)


def test_escape_same_position_twice_in_one_call_reverts(
    world: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    tree = s.tree
    with reverts(world.hatch.EscapeHatch_AlreadyEscaped, index=consts.leaf_index(s.p00)):
        world.hatch.escape(
            *_account(consts, tree, s.a0),
            [tree.witness(s.p00), tree.witness(s.p00)],
            sender=alice,
        )


def test_escape_position_twice_reverts(
    world: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    tree = s.tree
    world.hatch.escape(*_account(consts, tree, s.a0), [tree.witness(s.p01)], sender=alice)
    index = consts.leaf_index(s.p01)
    with reverts(world.hatch.EscapeHatch_AlreadyEscaped, index=index):
        world.hatch.escape(
            *_account(consts, tree, s.a0), [tree.witness(s.p00), tree.witness(s.p01)], sender=alice
        )
    with reverts(world.hatch.EscapeHatch_AlreadyEscaped, index=index):
        world.hatch.checkEscape.transact(
            *_account(consts, tree, s.a0), [tree.witness(s.p01)], sender=alice
        )
    # The failed call changed nothing: p00 is still unescaped.
    assert not world.hatch.isEscaped(consts.leaf_index(s.p00))


def test_escape_other_accounts_position_reverts(
    world: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    # Bob's profitable position under alice's account leaf would pay alice.
    with reverts(world.hatch.EscapeHatch_AccountMismatch, accountId=0, positionAccountId=1):
        world.hatch.escape(*_account(consts, s.tree, s.a0), [s.tree.witness(s.p11)], sender=alice)


def test_escape_market_not_proven_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], prove_markets=False)
    tree = s.tree
    with reverts(w.hatch.EscapeHatch_MarketNotProven, marketId=1):
        w.hatch.escape(*_account(consts, tree, s.a0), [tree.witness(s.p01)], sender=alice)
    m1 = tree.market(1)
    w.hatch.proveMarket(consts.leaf_fields(m1), tree.proof(m1), sender=stranger)
    w.hatch.escape(*_account(consts, tree, s.a0), [tree.witness(s.p01)], sender=alice)


def test_escape_tampered_position_reverts(
    world: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    tree = s.tree
    position, proof = tree.witness(s.p00)
    bigger = (*position[:3], position[3] + 1, *position[4:])
    index = consts.leaf_index(s.p00)
    with reverts(world.hatch.EscapeHatch_InvalidStateProof, index=index, root=tree.root):
        world.hatch.escape(*_account(consts, tree, s.a0), [(bigger, proof)], sender=alice)


def test_escape_position_market_out_of_range_reverts(
    world: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    tree = s.tree
    position, proof = tree.witness(s.p00)
    witness = ((position[0], 64, *position[2:]), proof)
    with reverts(world.hatch.LeafLib_MarketOutOfRange, marketId=64, limit=64):
        world.hatch.escape(*_account(consts, tree, s.a0), [witness], sender=alice)


def test_escape_bad_account_proof_with_positions_reverts(
    world: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    tree = s.tree
    with reverts(world.hatch.EscapeHatch_InvalidStateProof, index=0, root=tree.root):
        world.hatch.escape(
            consts.leaf_fields(s.a0), tree.proof(s.a1), [tree.witness(s.p00)], sender=alice
        )


# ---------------------------------------------------------------- stale and pending roots


def test_escape_pending_checkpoint_root_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    # Checkpoint 2 (alice richer) is pending when the exchange freezes: escapes use checkpoint 1.
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], freeze=False)
    richer = Account(0, alice.address, s.a0.collateral * 2, s.a0.nonce)
    tree2 = consts.StateTree([richer if leaf == s.a0 else leaf for leaf in s.tree.leaves])
    w.checkpoints.post_next(stateRoot=tree2.root)
    consts.freeze_now(w.settlement, stranger, w.checkpoints.chain)
    assert w.hatch.frozenSeq() == 1
    with reverts(w.hatch.EscapeHatch_InvalidStateProof, index=0, root=s.tree.root):
        w.hatch.escape(consts.leaf_fields(richer), tree2.proof(richer), [], sender=alice)
    w.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=alice)
    assert w.hatch.registeredOf(alice) == s.a0.collateral


def test_escape_older_finalized_root_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    # Checkpoint 2 (alice withdrew half) finalized before the freeze: checkpoint 1's leaf is stale.
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], freeze=False)
    poorer = Account(0, alice.address, s.a0.collateral // 2, s.a0.nonce + 1)
    tree2 = consts.StateTree([poorer if leaf == s.a0 else leaf for leaf in s.tree.leaves])
    w.checkpoints.post_next(stateRoot=tree2.root)
    w.checkpoints.finalize()
    consts.freeze_now(w.settlement, stranger, w.checkpoints.chain)
    assert w.hatch.frozenSeq() == 2
    with reverts(w.hatch.EscapeHatch_InvalidStateProof, index=0, root=tree2.root):
        w.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=alice)
    w.hatch.escape(consts.leaf_fields(poorer), tree2.proof(poorer), [], sender=alice)
    assert w.hatch.registeredOf(alice) == poorer.collateral


def test_escape_plus_claim_of_pending_withdrawal_reverts(
    escape_world: Any, s: Any, consts: Any, alice: Any, stranger: Any, reverts: Any
) -> None:
    # Checkpoint 2 moves 100k of alice's collateral into a withdrawal, but is pending at the
    # freeze: the escape pays the collateral of checkpoint 1 in full, and the withdrawal never
    # becomes claimable, so the same 100k cannot be taken twice.
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], freeze=False)
    settlement, hatch = w.settlement, w.hatch
    after = Account(0, alice.address, s.a0.collateral - 100_000 * USDC, s.a0.nonce + 1)
    tree2 = consts.StateTree([after if leaf == s.a0 else leaf for leaf in s.tree.leaves])
    withdrawals = consts.Withdrawals([(0, alice.address, 100_000 * USDC)])
    w.checkpoints.post_next(
        stateRoot=tree2.root,
        withdrawalsRoot=withdrawals.root,
        withdrawalCount=1,
        withdrawalTotal=100_000 * USDC,
    )
    final_at = settlement.finalizesAt(2)
    consts.freeze_now(settlement, stranger, w.checkpoints.chain)
    hatch.escape(*_account(consts, s.tree, s.a0), [], sender=alice)
    w.checkpoints.chain.mine(timestamp=final_at + 1)
    with reverts(settlement.Settlement_NotFinalized, seq=2, finalizesAt=final_at):
        settlement.claimWithdrawal(2, 0, *withdrawals.leaves[0], withdrawals.proof(0), sender=alice)


# ---------------------------------------------------------------- haircut


def _short_world(escape_world: Any, consts: Any, alice: Any, bob: Any) -> Any:
    """Claims exceed the vault: alice's leaf says 900k free collateral, the vault holds 700k (the
    header carries no claims total: the haircut comes from registered claims). Frozen now, with
    the short claim window."""
    s = scenario(consts, alice, bob, alice_collateral=900_000)
    w = escape_world(
        s.tree,
        [(alice, 500_000 * USDC), (bob, 200_000 * USDC)],
        claim_window=consts.CLAIM_WINDOW,
    )
    return SimpleNamespace(w=w, s=s)


@pytest.fixture
def ending(escape_world: Any, s: Any, alice: Any, bob: Any, consts: Any) -> Any:
    """Like `world`, built by the test itself with the short claim window (so it can end)."""
    return escape_world(
        s.tree, [(alice, 600_000 * USDC), (bob, 400_000 * USDC)], claim_window=consts.CLAIM_WINDOW
    )


def _escape_everything(w: Any, s: Any, consts: Any, order: list[str], sender: Any) -> None:
    """Escapes the named leaves one call each, in `order` (an account's first call also escapes its
    account leaf, so accounts come before their positions)."""
    tree, hatch = w.tree, w.hatch
    owners = {"p00": s.a0, "p01": s.a0, "p10": s.a1, "p11": s.a1}
    for name in order:
        leaf = getattr(s, name)
        if isinstance(leaf, Account):
            hatch.escape(*_account(consts, tree, leaf), [], sender=sender)
        else:
            hatch.escape(*_account(consts, tree, owners[name]), [tree.witness(leaf)], sender=sender)


def test_withdrawEscaped_haircut_independent_of_order_succeeds(
    escape_world: Any, consts: Any, alice: Any, bob: Any, stranger: Any, chain: Any
) -> None:
    # The same state frozen twice (two deployments), claims registered and withdrawn in two orders.
    orders = [
        (["a0", "p00", "p01", "a1", "p10", "p11"], (alice, bob)),
        (["a1", "p11", "p10", "a0", "p01", "p00"], (bob, alice)),
    ]
    for order, withdrawers in orders:
        short = _short_world(escape_world, consts, alice, bob)
        w, s = short.w, short.s
        hatch = w.hatch
        pool = hatch.pool()
        assert pool == 700_000 * USDC
        m0, m1 = s.tree.market(0), s.tree.market(1)
        claim_a = s.a0.collateral + consts.escape_value(s.p00, m0) + consts.escape_value(s.p01, m1)
        claim_b = s.a1.collateral + consts.escape_value(s.p11, m1)  # p10 is bad debt: 0
        total = claim_a + claim_b
        assert total == s.tree.claims_total() > pool
        expected = {alice.address: claim_a * pool // total, bob.address: claim_b * pool // total}
        _escape_everything(w, s, consts, order, stranger)
        assert hatch.registeredTotal() == total
        assert (hatch.registeredOf(alice), hatch.registeredOf(bob)) == (claim_a, claim_b)
        consts.end_window(hatch, chain)
        for who in withdrawers:
            assert hatch.owedTo(who) == expected[who.address]
            before = w.token.balanceOf(who)
            receipt = hatch.withdrawEscaped(sender=who)
            assert w.token.balanceOf(who) - before == expected[who.address]
            assert receipt.events[-1] == hatch.EscapeWithdrawn(who, who, expected[who.address])
        assert sum(expected.values()) <= pool
        # Nothing is left for late escapes when the registered claims exceed the pool.
        assert hatch.residual() == 0


def test_escape_register_full_payout_when_pool_covers_succeeds(
    ending: Any, s: Any, consts: Any, alice: Any, chain: Any
) -> None:
    # registeredTotal <= pool: every claim is paid in full (no haircut).
    world = ending
    hatch = world.hatch
    hatch.escape(*_account(consts, s.tree, s.a0), [s.tree.witness(s.p00)], sender=alice)
    value = s.a0.collateral + consts.escape_value(s.p00, s.tree.market(0))
    consts.end_window(hatch, chain)
    assert hatch.owedTo(alice) == value
    assert hatch.residual() == hatch.pool() - value
    before = world.token.balanceOf(alice)
    hatch.withdrawEscaped(sender=alice)
    assert world.token.balanceOf(alice) == before + value
    assert hatch.registeredOf(alice) == 0


def test_escape_huge_claim_reverts(
    escape_world: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    # A leaf worth more than 2^128 - 1 (only an absurd state) cannot be registered.
    huge = Account(0, alice.address, 2**128 - 1, 0)
    position = Position(0, 0, 1, 1, 0, 0)  # worth 1 + notional at mark 10: 11
    market = consts.make_market(0, mark=10)
    tree = consts.StateTree([market, huge, position])
    w = escape_world(tree, [(alice, 10 * USDC)])
    w.hatch.escape(consts.leaf_fields(huge), tree.proof(huge), [], sender=alice)
    with reverts(w.hatch.EscapeHatch_ClaimTooLarge, value=11, total=2**128 + 10):
        w.hatch.escape(
            consts.leaf_fields(huge), tree.proof(huge), [tree.witness(position)], sender=alice
        )


# ---------------------------------------------------------------- refundDeposit


def _refund_world(escape_world: Any, s: Any, alice: Any, bob: Any, stranger: Any, **kw: Any) -> Any:
    w = escape_world(
        s.tree,
        [(alice, 600_000 * USDC), (bob, 400_000 * USDC), (bob, 5_000 * USDC), (stranger, 7)],
        deposit_cursor=2,
        **kw,
    )
    logs = list(w.vault.Deposited.range(0, w.checkpoints.chain.blocks.head.number + 1))
    w.deposits = [(log.index, log.owner, log.amount, log.timestamp) for log in logs]
    return w


@pytest.fixture(scope="module")
def refund_world(escape_world: Any, s: Any, alice: Any, bob: Any, stranger: Any) -> Any:
    """Deposits 0 (alice 600k) and 1 (bob 400k) included; 2 (bob 5k) and 3 (stranger 7k) not."""
    return _refund_world(escape_world, s, alice, bob, stranger)


@pytest.fixture
def refund_ending(
    escape_world: Any, s: Any, alice: Any, bob: Any, stranger: Any, consts: Any
) -> Any:
    """`refund_world` built by the test itself with the short claim window (so it can end)."""
    return _refund_world(escape_world, s, alice, bob, stranger, claim_window=consts.CLAIM_WINDOW)


def test_refundDeposit_credits_owner_once_succeeds(
    refund_world: Any, bob: Any, stranger: Any, reverts: Any
) -> None:
    w = refund_world
    assert w.hatch.pool() == 1_000_000 * USDC  # the two refundable deposits are not in the pool
    index, owner, amount, ts = w.deposits[2]
    receipt = w.hatch.refundDeposit(index, owner, amount, ts, sender=stranger)
    assert receipt.events == [w.hatch.DepositRefunded(2, bob, 5_000 * USDC)]
    assert w.hatch.creditOf(bob) == 5_000 * USDC
    assert w.hatch.registeredOf(bob) == 0
    assert w.hatch.isRefunded(2)
    with reverts(w.hatch.EscapeHatch_AlreadyRefunded, index=2):
        w.hatch.refundDeposit(index, owner, amount, ts, sender=stranger)
    w.hatch.refundDeposit(*w.deposits[3], sender=stranger)
    assert w.hatch.creditOf(stranger) == 7


def test_refundDeposit_before_freeze_reverts(
    escape_world: Any, s: Any, alice: Any, reverts: Any
) -> None:
    w = escape_world(s.tree, [(alice, 600_000 * USDC)], deposit_cursor=0, freeze=False)
    with reverts(w.hatch.EscapeHatch_NotFrozen):
        w.hatch.refundDeposit(0, alice, 600_000 * USDC, 0, sender=alice)


def test_refundDeposit_included_deposit_reverts(
    refund_world: Any, stranger: Any, reverts: Any
) -> None:
    w = refund_world
    for i in (0, 1):
        with reverts(w.hatch.EscapeHatch_DepositIncluded, index=i, depositCursor=2):
            w.hatch.refundDeposit(*w.deposits[i], sender=stranger)


def test_refundDeposit_unknown_deposit_reverts(
    refund_world: Any, stranger: Any, reverts: Any
) -> None:
    w = refund_world
    _, owner, amount, ts = w.deposits[3]
    with reverts(w.hatch.EscapeHatch_UnknownDeposit, index=4, count=4):
        w.hatch.refundDeposit(4, owner, amount, ts, sender=stranger)


@pytest.mark.parametrize("field", ["owner", "amount", "timestamp"])
def test_refundDeposit_wrong_data_reverts(
    refund_world: Any, alice: Any, stranger: Any, reverts: Any, field: str
) -> None:
    w = refund_world
    index, owner, amount, ts = w.deposits[2]
    changed = {"owner": (alice.address, amount, ts), "amount": (owner, amount + 1, ts)}
    changed["timestamp"] = (owner, amount, ts + 1)
    expected = bytes(w.vault.depositPrefixHash(3))
    with reverts(w.hatch.EscapeHatch_DepositMismatch, expected=expected):
        w.hatch.refundDeposit(index, *changed[field], sender=stranger)


def test_vault_balance_covers_every_payout_succeeds(
    refund_ending: Any, s: Any, consts: Any, alice: Any, bob: Any, stranger: Any
) -> None:
    refund_world = refund_ending
    # Everyone escapes, refunds and withdraws: the vault pays it all and keeps the rest.
    w = refund_world
    tree = s.tree
    for a, positions in ((s.a0, [s.p00, s.p01]), (s.a1, [s.p10, s.p11])):
        w.hatch.escape(
            *_account(consts, tree, a), [tree.witness(p) for p in positions], sender=stranger
        )
    for deposit in w.deposits[2:]:
        w.hatch.refundDeposit(*deposit, sender=stranger)
    consts.end_window(w.hatch, w.checkpoints.chain)
    total_owed = sum(w.hatch.owedTo(x) for x in (alice, bob, stranger))
    assert total_owed == tree.claims_total() + 5_000 * USDC + 7
    start = w.token.balanceOf(w.vault)
    for who in (alice, bob, stranger):
        w.hatch.withdrawEscaped(sender=who)
    assert w.token.balanceOf(w.vault) == start - total_owed >= 0


# ---------------------------------------------------------------- withdrawEscaped


def test_withdrawEscaped_pays_caller_succeeds(
    ending: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    world = ending
    w = world
    w.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=alice)
    consts.end_window(w.hatch, w.checkpoints.chain)
    before = w.token.balanceOf(alice)
    receipt = w.hatch.withdrawEscaped(sender=alice)
    amount = s.a0.collateral
    assert receipt.events == [
        w.token.Transfer(w.vault, alice, amount),
        w.vault.PaidOut(alice, amount),
        w.hatch.EscapeWithdrawn(alice, alice, amount),
    ]
    assert w.token.balanceOf(alice) == before + amount
    assert w.hatch.owedTo(alice) == 0
    with reverts(w.hatch.EscapeHatch_NothingToWithdraw):
        w.hatch.withdrawEscaped(sender=alice)


def test_withdrawEscaped_nothing_reverts(world: Any, stranger: Any, reverts: Any) -> None:
    with reverts(world.hatch.EscapeHatch_NothingToWithdraw):
        world.hatch.withdrawEscaped(sender=stranger)


def test_withdrawEscaped_during_window_reverts(
    ending: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    world = ending
    world.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=alice)
    end = world.hatch.claimWindowEnd()
    world.checkpoints.chain.pending_timestamp = end - 1
    with reverts(world.hatch.EscapeHatch_ClaimWindowOpen, endsAt=end):
        world.hatch.withdrawEscaped(sender=alice)


def test_withdrawEscaped_refund_during_window_succeeds(
    refund_ending: Any, s: Any, consts: Any, bob: Any, reverts: Any
) -> None:
    refund_world = refund_ending
    # Refunds are paid at once; the registered claim waits for the window's end.
    w = refund_world
    w.hatch.escape(*_account(consts, s.tree, s.a1), [], sender=bob)
    w.hatch.refundDeposit(*w.deposits[2], sender=bob)
    before = w.token.balanceOf(bob)
    w.hatch.withdrawEscaped(sender=bob)
    assert w.token.balanceOf(bob) == before + 5_000 * USDC
    assert w.hatch.registeredOf(bob) == s.a1.collateral
    with reverts(w.hatch.EscapeHatch_ClaimWindowOpen, endsAt=w.hatch.claimWindowEnd()):
        w.hatch.withdrawEscaped(sender=bob)
    consts.end_window(w.hatch, w.checkpoints.chain)
    w.hatch.withdrawEscaped(sender=bob)
    assert w.token.balanceOf(bob) == before + 5_000 * USDC + s.a1.collateral


def test_withdrawEscapedTo_pays_recipient_succeeds(
    ending: Any, s: Any, consts: Any, alice: Any, stranger: Any
) -> None:
    world = ending
    w = world
    w.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=stranger)
    consts.end_window(w.hatch, w.checkpoints.chain)
    before = w.token.balanceOf(stranger)
    receipt = w.hatch.withdrawEscapedTo(stranger, sender=alice)
    assert receipt.events[-1] == w.hatch.EscapeWithdrawn(alice, stranger, s.a0.collateral)
    assert w.token.balanceOf(stranger) == before + s.a0.collateral
    assert w.hatch.owedTo(alice) == 0


def test_withdrawEscapedTo_zero_recipient_reverts(
    ending: Any, s: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    world = ending
    world.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=alice)
    consts.end_window(world.hatch, world.checkpoints.chain)
    with reverts(world.hatch.EscapeHatch_ZeroRecipient):
        world.hatch.withdrawEscapedTo("0x" + "00" * 20, sender=alice)


def test_withdrawEscapedTo_nothing_reverts(world: Any, alice: Any, reverts: Any) -> None:
    with reverts(world.hatch.EscapeHatch_NothingToWithdraw):
        world.hatch.withdrawEscapedTo(alice, sender=alice)


def test_withdrawEscaped_blocked_owner_paid_later_succeeds(
    escape_world: Any,
    s: Any,
    consts: Any,
    project: Any,
    deployer: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    reverts: Any,
) -> None:
    # A token that refuses transfers to alice (a blocklist, a receive hook that reverts): others
    # withdraw regardless, and alice's claim waits until she can be paid.
    token = deployer.deploy(project.MisbehavingToken)
    w = escape_world(
        s.tree,
        [(alice, 600_000 * USDC), (bob, 400_000 * USDC)],
        token=token,
        claim_window=consts.CLAIM_WINDOW,
    )
    w.hatch.escape(*_account(consts, s.tree, s.a0), [], sender=stranger)
    w.hatch.escape(*_account(consts, s.tree, s.a1), [], sender=stranger)
    consts.end_window(w.hatch, w.checkpoints.chain)
    token.setMode(REVERT_EMPTY, sender=deployer)
    with reverts(w.vault.Vault_TokenTransferFailed, token=token.address):
        w.hatch.withdrawEscaped(sender=alice)
    assert w.hatch.registeredOf(alice) == s.a0.collateral
    token.setMode(NOT_A_TOKEN_REASON, sender=deployer)
    w.hatch.withdrawEscaped(sender=bob)
    w.hatch.withdrawEscaped(sender=alice)
    assert token.balanceOf(alice) == s.a0.collateral
    assert w.hatch.owedTo(alice) == 0
