"""DisputeGame: construction (the Settlement must name it; the per-record verifier registry) and the
header-vs-state proof: each of the five header fields that copy the exchange leaf, against a real
state tree, invalidates the checkpoint through the Settlement; an honest checkpoint (one the real
batch builder made) is never disputable."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from isoperp.batch.builder import BatchBuilder
from isoperp.chain.deploy import create_address
from isoperp.hashing import keccak256
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.model import Account, Exchange
from isoperp.ledger.transitions import Deposit, forced_request
from isoperp.protocol import leaves as L
from isoperp.protocol.header import CheckpointHeader
from isoperp.protocol.signing import Domain

FEE = 10**15
USDC = 10**6
FIELD_DEPOSIT_CURSOR, FIELD_FORCED_CURSOR, FIELD_WITHDRAWALS_ROOT = 1, 2, 3
FIELD_WITHDRAWAL_COUNT, FIELD_WITHDRAWAL_TOTAL = 4, 5


@pytest.fixture
def world(
    deploy_game: Any,
    project: Any,
    usdc: Any,
    operator: Any,
    alice: Any,
    bob: Any,
    chain: Any,
    consts: Any,
) -> SimpleNamespace:
    """A bonded Settlement + DisputeGame with two deposits and two forced requests queued, and a
    state tree whose exchange leaf is what an honest checkpoint over them carries: deposit cursor
    2, forced cursor 2, one withdrawal of 40 USDC (`honest` = those header fields)."""
    settlement, game = deploy_game(usdc)
    settlement.postBond(sender=operator, value=consts.MIN_BOND)
    vault = project.CollateralVault.at(settlement.vault())
    hatch = consts.hatch_of(settlement)
    for who in (alice, bob):
        consts.fund_and_deposit(usdc, vault, who, 100 * USDC)
    hatch.requestForcedWithdrawal(0, 40 * USDC, sender=alice, value=FEE)
    hatch.requestForcedWithdrawal(1, 1, sender=bob, value=FEE)
    withdrawals = consts.Withdrawals([(0, alice.address, 40 * USDC)])
    exchange = Exchange(
        insurance_fund=0,
        fee_balance=0,
        next_account_id=2,
        deposit_cursor=2,
        forced_cursor=2,
        withdrawals_root=withdrawals.root,
        withdrawal_count=1,
        withdrawal_total=40 * USDC,
    )
    tree = consts.StateTree(
        [
            consts.make_market(0, 50_000 * USDC),
            Account(0, alice.address, 60 * USDC, 0),
            Account(1, bob.address, 100 * USDC, 0),
            exchange,
        ]
    )
    honest = {
        "stateRoot": tree.root,
        "depositCursor": 2,
        "forcedCursor": 2,
        "withdrawalsRoot": withdrawals.root,
        "withdrawalCount": 1,
        "withdrawalTotal": 40 * USDC,
    }
    return SimpleNamespace(
        settlement=settlement,
        game=game,
        hatch=hatch,
        checkpoints=consts.Checkpoints(settlement, vault, operator, chain),
        tree=tree,
        exchange=exchange,
        honest=honest,
    )


def _leaf(world: SimpleNamespace) -> tuple[Any, ...]:
    return L.solidity_struct(world.exchange)


def _proof(world: SimpleNamespace) -> list[bytes]:
    return world.tree.proof(world.exchange)


# The lying header field of each case, and the code HeaderMismatchProven reports.
LIES = {
    "depositCursor": ({"depositCursor": 1}, FIELD_DEPOSIT_CURSOR),
    "forcedCursor": ({"forcedCursor": 1}, FIELD_FORCED_CURSOR),
    "withdrawalsRoot": ({"withdrawalsRoot": keccak256(b"another root")}, FIELD_WITHDRAWALS_ROOT),
    "withdrawalCount": ({"withdrawalCount": 2}, FIELD_WITHDRAWAL_COUNT),
    "withdrawalTotal": ({"withdrawalTotal": 40 * USDC + 1}, FIELD_WITHDRAWAL_TOTAL),
}


# ---------------------------------------------------------------- constructor


def test_constructor_stores_settlement_and_no_verifiers_succeeds(
    deploy_game: Any, usdc: Any
) -> None:
    settlement, game = deploy_game(usdc)
    assert game.settlement() == settlement.address
    assert all(game.verifierOf(t) == "0x" + "00" * 20 for t in (0, 1, 0x04, 0x13, 255))
    codes = (
        game.FIELD_DEPOSIT_CURSOR(),
        game.FIELD_FORCED_CURSOR(),
        game.FIELD_WITHDRAWALS_ROOT(),
        game.FIELD_WITHDRAWAL_COUNT(),
        game.FIELD_WITHDRAWAL_TOTAL(),
    )
    assert codes == (1, 2, 3, 4, 5)


def test_constructor_registers_verifiers_succeeds(
    deploy_game: Any, usdc: Any, project: Any, deployer: Any
) -> None:
    a = deployer.deploy(project.MerkleProofHarness)
    b = deployer.deploy(project.LeafHarness)
    _, game = deploy_game(usdc, record_types=[0x04, 0x0A], verifiers=[a, b])
    assert (game.verifierOf(0x04), game.verifierOf(0x0A)) == (a.address, b.address)
    assert game.verifierOf(0x01) == "0x" + "00" * 20


def test_constructor_settlement_names_another_disputes_reverts(
    settlement: Any, project: Any, deployer: Any, reverts: Any, consts: Any
) -> None:
    """The test Settlement names a plain account: a DisputeGame for it would be powerless."""
    with reverts(
        project.DisputeGame.DisputeGame_NotSettlementsDisputes,
        settlement=settlement.address,
        disputes=consts.DISPUTER,
    ):
        deployer.deploy(project.DisputeGame, settlement, [], [])


def test_constructor_verifier_list_mismatch_reverts(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, consts: Any, reverts: Any
) -> None:
    game_at = create_address(deployer.address, deployer.nonce + 1)
    settlement = deployer.deploy(
        project.Settlement, *consts.settlement_args(usdc, operator, oracle, disputes=game_at)
    )
    with reverts(
        project.DisputeGame.DisputeGame_VerifierListMismatch, recordTypes=2, verifiers=1
    ):
        deployer.deploy(project.DisputeGame, settlement, [1, 2], [usdc])


def test_constructor_verifier_not_contract_reverts(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, consts: Any, reverts: Any
) -> None:
    game_at = create_address(deployer.address, deployer.nonce + 1)
    settlement = deployer.deploy(
        project.Settlement, *consts.settlement_args(usdc, operator, oracle, disputes=game_at)
    )
    with reverts(
        project.DisputeGame.DisputeGame_VerifierNotContract,
        recordType=4,
        verifier=operator.address,
    ):
        deployer.deploy(project.DisputeGame, settlement, [1, 4], [usdc, operator])


def test_constructor_duplicate_verifier_reverts(
    project: Any, deployer: Any, usdc: Any, operator: Any, oracle: Any, consts: Any, reverts: Any
) -> None:
    game_at = create_address(deployer.address, deployer.nonce + 1)
    settlement = deployer.deploy(
        project.Settlement, *consts.settlement_args(usdc, operator, oracle, disputes=game_at)
    )
    with reverts(project.DisputeGame.DisputeGame_DuplicateVerifier, recordType=7):
        deployer.deploy(project.DisputeGame, settlement, [7, 8, 7], [usdc, usdc, usdc])


# ---------------------------------------------------------------- proveHeaderMismatch


@pytest.mark.parametrize("field", list(LIES))
def test_proveHeaderMismatch_field_differs_succeeds(
    world: SimpleNamespace, field: str, stranger: Any
) -> None:
    overrides, code = LIES[field]
    header, _ = world.checkpoints.post_next(**{**world.honest, **overrides})
    seq = header["seq"]
    assert world.game.checkHeaderMismatch(seq, _leaf(world), _proof(world)) == code
    receipt = world.game.proveHeaderMismatch(seq, _leaf(world), _proof(world), sender=stranger)
    assert receipt.events.filter(world.game.HeaderMismatchProven) == [
        world.game.HeaderMismatchProven(seq, code, stranger)
    ]
    assert receipt.events.filter(world.settlement.CheckpointsInvalidated) == [
        world.settlement.CheckpointsInvalidated(seq, seq)
    ]
    assert world.settlement.latestSeq() == seq - 1


def test_proveHeaderMismatch_several_fields_reports_first_succeeds(
    world: SimpleNamespace, stranger: Any
) -> None:
    lies = {"forcedCursor": 1, "withdrawalTotal": 40 * USDC + 1}
    world.checkpoints.post_next(**{**world.honest, **lies})
    receipt = world.game.proveHeaderMismatch(1, _leaf(world), _proof(world), sender=stranger)
    assert receipt.events.filter(world.game.HeaderMismatchProven) == [
        world.game.HeaderMismatchProven(1, FIELD_FORCED_CURSOR, stranger)
    ]


def test_proveHeaderMismatch_invalidates_later_checkpoints_succeeds(
    world: SimpleNamespace, stranger: Any
) -> None:
    """Disputing checkpoint 1 takes 2 and 3 with it; the honest re-post chains onto genesis."""
    lying = {**world.honest, "withdrawalCount": 2}
    for _ in range(3):
        world.checkpoints.post_next(**lying)
    receipt = world.game.proveHeaderMismatch(1, _leaf(world), _proof(world), sender=stranger)
    assert receipt.events.filter(world.settlement.CheckpointsInvalidated) == [
        world.settlement.CheckpointsInvalidated(1, 3)
    ]
    header, _ = world.checkpoints.post_next(**world.honest)
    assert header["seq"] == 1 and world.settlement.latestSeq() == 1


def test_proveHeaderMismatch_no_mismatch_reverts(
    world: SimpleNamespace, stranger: Any, reverts: Any
) -> None:
    world.checkpoints.post_next(**world.honest)
    with reverts(world.game.DisputeGame_NoMismatch, seq=1):
        world.game.proveHeaderMismatch(1, _leaf(world), _proof(world), sender=stranger)
    assert world.settlement.latestSeq() == 1


def test_proveHeaderMismatch_leaf_not_in_state_reverts(
    world: SimpleNamespace, stranger: Any, reverts: Any
) -> None:
    """A made-up exchange leaf (the header's numbers) does not prove against the state root."""
    world.checkpoints.post_next(**{**world.honest, "withdrawalCount": 2})
    forged = list(_leaf(world))
    forged[6] = 2  # withdrawalCount, as the lying header says
    with reverts(
        world.game.DisputeGame_InvalidStateProof, seq=1, stateRoot=world.tree.root
    ):
        world.game.proveHeaderMismatch(1, tuple(forged), _proof(world), sender=stranger)


def test_proveHeaderMismatch_proof_wrong_length_reverts(
    world: SimpleNamespace, stranger: Any, reverts: Any
) -> None:
    world.checkpoints.post_next(**{**world.honest, "withdrawalCount": 2})
    with reverts(world.game.MerkleProof_WrongLength, got=31, depth=32):
        world.game.proveHeaderMismatch(1, _leaf(world), _proof(world)[:31], sender=stranger)


def test_proveHeaderMismatch_unknown_checkpoint_reverts(
    world: SimpleNamespace, stranger: Any, reverts: Any
) -> None:
    world.checkpoints.post_next(**{**world.honest, "withdrawalCount": 2})
    with reverts(world.settlement.Settlement_UnknownCheckpoint, seq=2):
        world.game.proveHeaderMismatch(2, _leaf(world), _proof(world), sender=stranger)


def test_proveHeaderMismatch_final_checkpoint_reverts(
    world: SimpleNamespace, stranger: Any, reverts: Any
) -> None:
    """A wrong header that finalized unchallenged stays: the Settlement refuses the verdict."""
    world.checkpoints.post_next(**{**world.honest, "withdrawalCount": 2})
    final_at = world.settlement.finalizesAt(1)
    world.checkpoints.finalize()
    assert world.game.checkHeaderMismatch(1, _leaf(world), _proof(world)) == 4
    with reverts(world.settlement.Settlement_CheckpointFinal, seq=1, finalizedAt=final_at):
        world.game.proveHeaderMismatch(1, _leaf(world), _proof(world), sender=stranger)
    assert world.settlement.latestSeq() == 1


def test_checkHeaderMismatch_no_mismatch_reverts(
    world: SimpleNamespace, stranger: Any, reverts: Any
) -> None:
    world.checkpoints.post_next(**world.honest)
    with reverts(world.game.DisputeGame_NoMismatch, seq=1):
        world.game.checkHeaderMismatch.transact(1, _leaf(world), _proof(world), sender=stranger)


def test_proveHeaderMismatch_honest_builder_checkpoint_reverts(
    deploy_game: Any,
    project: Any,
    usdc: Any,
    operator: Any,
    alice: Any,
    bob: Any,
    stranger: Any,
    chain: Any,
    reverts: Any,
    consts: Any,
) -> None:
    """A checkpoint the real batch builder sealed (deposits, a paying forced withdrawal, a no-op
    one) is never disputable: its header copies the exchange leaf of its state exactly."""
    genesis = Ledger.genesis(
        DEVNET_MARKETS, Domain(0, "0x" + "00" * 20), DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR
    )
    settlement, game = deploy_game(usdc, genesis.state_root)
    settlement.postBond(sender=operator, value=consts.MIN_BOND)
    vault = project.CollateralVault.at(settlement.vault())
    hatch = consts.hatch_of(settlement)
    ledger = Ledger.genesis(
        DEVNET_MARKETS,
        Domain(chain.chain_id, settlement.address),
        DEVNET_ORACLE,
        fee_recipient=DEVNET_OPERATOR,
    )
    builder = BatchBuilder(ledger, CheckpointHeader.genesis(ledger.state_root))
    for who in (alice, bob):
        usdc.mint(who, 100 * USDC, sender=who)
        usdc.approve(vault, 100 * USDC, sender=who)
        receipt = vault.deposit(who, 100 * USDC, sender=who)
        d = next(x for x in receipt.events if x.event_name == "Deposited")
        # account id = queue index here: each deposit opens the next account
        builder.add(
            Deposit(int(d.index), int(d.index), d.owner, int(d.amount), int(d.timestamp))
        )
    receipts = [
        hatch.requestForcedWithdrawal(0, 40 * USDC, sender=alice, value=FEE),
        hatch.requestForcedWithdrawal(0, 5, sender=stranger, value=FEE),  # not the owner: no-op
    ]
    for r in receipts:
        e = next(x for x in r.events if x.event_name == "ForcedRequested")
        builder.add(
            forced_request(
                int(e.index), int(e.kind), e.requester, int(e.accountId), int(e.marketId),
                int(e.amount), int(e.timestamp),
            )
        )
    sealed = builder.seal(timestamp=chain.blocks.head.timestamp)
    settlement.postCheckpoint(sealed.header.as_abi_tuple(), sealed.data, sender=operator)
    exchange = ledger.exchange
    assert (exchange.deposit_cursor, exchange.forced_cursor, exchange.withdrawal_count) == (2, 2, 1)
    leaf = L.solidity_struct(exchange)
    proof = ledger.proof(L.EXCHANGE_INDEX)
    with reverts(game.DisputeGame_NoMismatch, seq=1):
        game.proveHeaderMismatch(1, leaf, proof, sender=stranger)
    assert settlement.latestSeq() == 1
