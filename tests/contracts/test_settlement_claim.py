"""Settlement.claimWithdrawal and checkWithdrawal: every withdrawal is a leaf of one global
append-only tree (depth 32) whose root and cumulative count each checkpoint stores; a leaf is paid
once, to the recipient in the leaf, with a proof against any finalized checkpoint that holds it
(index < its count), whichever one proves it."""

from __future__ import annotations

from typing import Any

import pytest

from isoperp.hashing import keccak256

USDC = 10**6


@pytest.fixture
def leaves(alice: Any, bob: Any, stranger: Any) -> list[tuple[int, str, int]]:
    return [
        (0, alice.address, 100 * USDC),
        (1, bob.address, 50 * USDC),
        (0, stranger.address, 1),  # account 0 withdrawing to a third address
    ]


@pytest.fixture
def posted(checkpoints: Any, funded_vault: Any, leaves: list[tuple[int, str, int]]) -> Any:
    """(seq, withdrawals) of a pending checkpoint holding `leaves`."""
    return checkpoints.post_withdrawals(leaves)


@pytest.fixture
def final(posted: Any, checkpoints: Any) -> Any:
    checkpoints.finalize()
    return posted


def _claim(
    settlement: Any,
    seq: int,
    w: Any,
    index: int,
    sender: Any,
    changes: dict[str, Any] | None = None,
) -> Any:
    """Claims leaf `index` of `w` in checkpoint `seq`, with some arguments replaced by `changes`."""
    account_id, recipient, amount = w.leaves[index]
    args = {
        "seq": seq,
        "index": index,
        "accountId": account_id,
        "recipient": recipient,
        "amount": amount,
        "proof": w.proof(index),
    }
    args.update(changes or {})
    return settlement.claimWithdrawal(*args.values(), sender=sender)


# ---------------------------------------------------------------- success


def test_claimWithdrawal_finalized_pays_recipient_succeeds(
    final: Any, bonded: Any, funded_vault: Any, usdc: Any, alice: Any, stranger: Any
) -> None:
    seq, w = final
    vault_before, alice_before = usdc.balanceOf(funded_vault), usdc.balanceOf(alice)
    receipt = _claim(bonded, seq, w, 0, sender=stranger)  # anyone may call; alice is paid
    assert receipt.events == [
        usdc.Transfer(funded_vault, alice, 100 * USDC),
        funded_vault.PaidOut(alice, 100 * USDC),
        bonded.WithdrawalClaimed(seq, 0, 0, alice, 100 * USDC),
    ]
    assert usdc.balanceOf(funded_vault) == vault_before - 100 * USDC
    assert usdc.balanceOf(alice) == alice_before + 100 * USDC
    assert usdc.balanceOf(stranger) == 0
    assert bonded.isClaimed(0)
    assert not bonded.isClaimed(1)


def test_claimWithdrawal_every_leaf_moves_exact_total_succeeds(
    final: Any, bonded: Any, funded_vault: Any, usdc: Any, stranger: Any
) -> None:
    seq, w = final
    vault_before = usdc.balanceOf(funded_vault)
    for index in range(len(w.leaves)):
        _claim(bonded, seq, w, index, sender=stranger)
    assert usdc.balanceOf(funded_vault) == vault_before - sum(a for _, _, a in w.leaves)
    assert usdc.balanceOf(stranger) == 1
    assert all(bonded.isClaimed(i) for i in range(len(w.leaves)))
    # The running total of claims (the escape pool subtracts what is still owed).
    assert bonded.withdrawalsClaimed() == sum(a for _, _, a in w.leaves)


def test_claimWithdrawal_through_a_later_checkpoint_succeeds(
    checkpoints: Any, bonded: Any, funded_vault: Any, usdc: Any, alice: Any, bob: Any
) -> None:
    # checkpoint 1 appends leaf 0, checkpoint 2 leaf 1: leaf 0 is provable against both roots,
    # leaf 1 only against the second (the first's count is 1)
    first = [(0, alice.address, 7 * USDC)]
    seq1, w1 = checkpoints.post_withdrawals(first)
    seq2, w2 = checkpoints.post_withdrawals([*first, (1, bob.address, 3 * USDC)])
    checkpoints.finalize()
    bonded.checkWithdrawal(seq1, 0, *w1.leaves[0], w1.proof(0))
    _claim(bonded, seq2, w2, 0, sender=alice)  # leaf 0 through checkpoint 2
    _claim(bonded, seq2, w2, 1, sender=bob)
    assert usdc.balanceOf(alice) == 7 * USDC and usdc.balanceOf(bob) == 3 * USDC
    assert bonded.isClaimed(0) and bonded.isClaimed(1)
    assert bonded.withdrawalsClaimed() == 10 * USDC


def test_claimWithdrawal_same_leaf_through_two_checkpoints_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, usdc: Any, alice: Any, reverts: Any
) -> None:
    # the claimed bitmap is keyed by the global index: a leaf paid through checkpoint 1 cannot be
    # paid again through checkpoint 2, which holds it too
    leaf = [(0, alice.address, 7 * USDC)]
    seq1, w1 = checkpoints.post_withdrawals(leaf)
    seq2, w2 = checkpoints.post_withdrawals(leaf)
    checkpoints.finalize()
    assert bytes(bonded.getCheckpoint(seq1).withdrawalsRoot) == w2.root
    _claim(bonded, seq1, w1, 0, sender=alice)
    with reverts(bonded.Settlement_AlreadyClaimed, index=0):
        _claim(bonded, seq2, w2, 0, sender=alice)
    assert usdc.balanceOf(alice) == 7 * USDC


def test_claimWithdrawal_leaf_beyond_an_earlier_count_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, alice: Any, bob: Any, reverts: Any
) -> None:
    # leaf 1 was appended by checkpoint 2: checkpoint 1 (count 1) cannot pay it, even with the
    # proof that is valid against checkpoint 2
    first = [(0, alice.address, 7 * USDC)]
    seq1, _ = checkpoints.post_withdrawals(first)
    _, w2 = checkpoints.post_withdrawals([*first, (1, bob.address, 3 * USDC)])
    checkpoints.finalize()
    with reverts(bonded.Settlement_WithdrawalIndexOutOfRange, index=1, count=1):
        _claim(bonded, seq1, w2, 1, sender=bob)


def test_claimWithdrawal_proof_against_another_checkpoint_root_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, alice: Any, bob: Any, reverts: Any
) -> None:
    # leaf 0's proof in checkpoint 2's tree (its sibling is leaf 1) does not lead to checkpoint
    # 1's root (where the sibling is empty)
    first = [(0, alice.address, 7 * USDC)]
    seq1, _ = checkpoints.post_withdrawals(first)
    _, w2 = checkpoints.post_withdrawals([*first, (1, bob.address, 3 * USDC)])
    checkpoints.finalize()
    with reverts(bonded.Settlement_InvalidProof):
        _claim(bonded, seq1, w2, 0, sender=alice)


def test_claimWithdrawal_pending_later_checkpoint_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, alice: Any, reverts: Any
) -> None:
    # finalized checkpoint 1 pays leaf 0; pending checkpoint 2 (which also holds it) does not
    leaf = [(0, alice.address, 7 * USDC)]
    seq1, w1 = checkpoints.post_withdrawals(leaf)
    checkpoints.finalize()
    seq2, w2 = checkpoints.post_withdrawals(leaf)
    with reverts(bonded.Settlement_NotFinalized, seq=seq2):
        _claim(bonded, seq2, w2, 0, sender=alice)
    _claim(bonded, seq1, w1, 0, sender=alice)


def test_claimWithdrawal_bitmap_word_boundary_succeeds(
    checkpoints: Any, bonded: Any, funded_vault: Any, alice: Any
) -> None:
    leaves = [(i, alice.address, 1) for i in range(300)]
    seq, w = checkpoints.post_withdrawals(leaves)
    checkpoints.finalize()
    for index in (255, 256, 299):
        _claim(bonded, seq, w, index, sender=alice)
    claimed = {i for i in (0, 254, 255, 256, 257, 298, 299) if bonded.isClaimed(i)}
    assert claimed == {255, 256, 299}


def test_claimWithdrawal_last_slot_of_full_tree_succeeds(
    checkpoints: Any, bonded: Any, funded_vault: Any, consts: Any, alice: Any, usdc: Any
) -> None:
    # the header's uint32 count holds at most 2^32 - 1 leaves: index 2^32 - 2 is claimable, and
    # index 2^31 (the top bit of the depth-32 path) too.
    w = consts.Withdrawals([])
    last, top = 2**32 - 2, 2**31
    leaves = {last: (3, alice.address, 9), top: (4, alice.address, 5)}
    w.leaves = leaves  # by index: a list of 2^32 leaves would not fit
    for index, leaf in leaves.items():
        w.tree.set(index, consts.withdrawal_leaf(*leaf))
    seq = checkpoints.post_next(withdrawalsRoot=w.root, withdrawalCount=2**32 - 1)[0]["seq"]
    checkpoints.finalize()
    _claim(bonded, seq, w, last, sender=alice)
    _claim(bonded, seq, w, top, sender=alice)
    assert usdc.balanceOf(alice) == 14
    assert bonded.isClaimed(last) and bonded.isClaimed(top) and not bonded.isClaimed(0)


# ---------------------------------------------------------------- reverts


def test_claimWithdrawal_before_finality_reverts(
    posted: Any, bonded: Any, alice: Any, reverts: Any
) -> None:
    seq, w = posted
    finalizes_at = bonded.finalizesAt(seq)
    with reverts(bonded.Settlement_NotFinalized, seq=seq, finalizesAt=finalizes_at):
        _claim(bonded, seq, w, 0, sender=alice)


def test_claimWithdrawal_one_second_before_finality_reverts(
    posted: Any, bonded: Any, chain: Any, alice: Any, reverts: Any
) -> None:
    seq, w = posted
    chain.pending_timestamp = bonded.finalizesAt(seq) - 1
    with reverts(bonded.Settlement_NotFinalized, seq=seq):
        _claim(bonded, seq, w, 0, sender=alice)
    chain.pending_timestamp = bonded.finalizesAt(seq)
    _claim(bonded, seq, w, 0, sender=alice)
    assert bonded.isClaimed(0)


def test_claimWithdrawal_twice_reverts(final: Any, bonded: Any, alice: Any, reverts: Any) -> None:
    seq, w = final
    _claim(bonded, seq, w, 0, sender=alice)
    with reverts(bonded.Settlement_AlreadyClaimed, index=0):
        _claim(bonded, seq, w, 0, sender=alice)


def test_claimWithdrawal_unknown_checkpoint_reverts(
    final: Any, bonded: Any, alice: Any, reverts: Any
) -> None:
    seq, w = final
    with reverts(bonded.Settlement_UnknownCheckpoint, seq=seq + 1):
        _claim(bonded, seq, w, 0, sender=alice, changes={"seq": seq + 1})


def test_claimWithdrawal_genesis_has_no_withdrawals_reverts(
    final: Any, bonded: Any, alice: Any, reverts: Any
) -> None:
    seq, w = final
    with reverts(bonded.Settlement_WithdrawalIndexOutOfRange, index=0, count=0):
        _claim(bonded, seq, w, 0, sender=alice, changes={"seq": 0})


def test_claimWithdrawal_index_at_count_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    # The tree holds a leaf at index 2, but the header says only 2 withdrawals: leaf 2 is not part
    # of the batch and must not be payable, even with a valid proof.
    w = consts.Withdrawals([(0, alice.address, 5), (0, alice.address, 6), (0, alice.address, 7)])
    seq = checkpoints.post_next(withdrawalsRoot=w.root, withdrawalCount=2)[0]["seq"]
    checkpoints.finalize()
    with reverts(bonded.Settlement_WithdrawalIndexOutOfRange, index=2, count=2):
        _claim(bonded, seq, w, 2, sender=alice)


@pytest.mark.parametrize("index", [3, 2**16, 2**32 - 1])
def test_claimWithdrawal_index_beyond_count_reverts(
    final: Any, bonded: Any, alice: Any, reverts: Any, index: int
) -> None:
    seq, w = final
    with reverts(bonded.Settlement_WithdrawalIndexOutOfRange, index=index, count=3):
        _claim(bonded, seq, w, 0, sender=alice, changes={"index": index})


def test_claimWithdrawal_old_depth_16_alias_reverts(
    checkpoints: Any, bonded: Any, funded_vault: Any, consts: Any, alice: Any, reverts: Any
) -> None:
    # index 2^16 had the path bits of index 0 in the depth-16 tree; in the depth-32 tree every
    # index bit is a path bit, so leaf 0's proof fails at index 2^16.
    w = consts.Withdrawals([(0, alice.address, 5)])
    seq = checkpoints.post_next(withdrawalsRoot=w.root, withdrawalCount=2**32 - 1)[0]["seq"]
    checkpoints.finalize()
    with reverts(bonded.Settlement_InvalidProof):
        _claim(bonded, seq, w, 0, sender=alice, changes={"index": 2**16})


@pytest.mark.parametrize(
    "change",
    ["amount", "recipient", "accountId", "index", "sibling", "proof-of-other-leaf"],
)
def test_claimWithdrawal_tampered_claim_reverts(
    final: Any, bonded: Any, alice: Any, bob: Any, reverts: Any, change: str
) -> None:
    seq, w = final
    proof = w.proof(0)
    changes: dict[str, Any] = {
        "amount": {"amount": 100 * USDC + 1},
        "recipient": {"recipient": bob.address},
        "accountId": {"accountId": 1},
        "index": {"index": 1},
        "sibling": {"proof": [*proof[:5], keccak256(proof[5]), *proof[6:]]},
        "proof-of-other-leaf": {"proof": w.proof(1)},
    }[change]
    with reverts(bonded.Settlement_InvalidProof):
        _claim(bonded, seq, w, 0, sender=alice, changes=changes)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_claimWithdrawal_proof_wrong_length_reverts(
    final: Any, bonded: Any, alice: Any, reverts: Any, length: int
) -> None:
    seq, w = final
    proof = (w.proof(0) * 2)[:length]
    with reverts(bonded.MerkleProof_WrongLength, got=length, depth=32):
        _claim(bonded, seq, w, 0, sender=alice, changes={"proof": proof})


def test_claimWithdrawal_more_than_vault_holds_reverts(
    checkpoints: Any, bonded: Any, usdc: Any, alice: Any, reverts: Any
) -> None:
    # An (invalid) checkpoint paying more than was deposited cannot overdraw the vault; the claim
    # stays unclaimed because the whole transaction reverts.
    seq, w = checkpoints.post_withdrawals([(0, alice.address, 1)])
    checkpoints.finalize()
    with reverts(usdc.MockUSDC_InsufficientBalance, balance=0, needed=1):
        _claim(bonded, seq, w, 0, sender=alice)
    assert not bonded.isClaimed(0)


def test_claimWithdrawal_reentrant_token_cannot_claim_twice_reverts(
    project: Any, deployer: Any, alice: Any, deploy_settlement: Any, reverts: Any
) -> None:
    # A token that calls claimWithdrawal again from inside the payout: the leaf is already marked
    # claimed (state before the external call), so the inner claim fails and everything reverts.
    token = deployer.deploy(project.MisbehavingToken)
    settlement, vault, checkpoints = deploy_settlement(token)
    token.mint(vault, 100, sender=deployer)
    seq, w = checkpoints.post_withdrawals([(0, alice.address, 10)])
    checkpoints.finalize()
    args = (seq, 0, 0, alice.address, 10, w.proof(0))
    token.setCallback(settlement, settlement.claimWithdrawal.encode_input(*args), sender=deployer)
    with reverts(settlement.Settlement_AlreadyClaimed, index=0):
        settlement.claimWithdrawal(*args, sender=alice)
    token.setCallback("0x" + "00" * 20, b"", sender=deployer)
    settlement.claimWithdrawal(*args, sender=alice)
    assert token.balanceOf(alice) == 10
    assert token.balanceOf(vault) == 90


# ---------------------------------------------------------------- checkWithdrawal


def test_checkWithdrawal_valid_claim_succeeds(final: Any, bonded: Any) -> None:
    seq, w = final
    account_id, recipient, amount = w.leaves[1]
    bonded.checkWithdrawal(seq, 1, account_id, recipient, amount, w.proof(1))  # does not revert


def test_checkWithdrawal_pending_reverts(
    posted: Any, bonded: Any, deployer: Any, reverts: Any
) -> None:
    seq, w = posted
    account_id, recipient, amount = w.leaves[1]
    with reverts(bonded.Settlement_NotFinalized, seq=seq):
        bonded.checkWithdrawal.transact(
            seq, 1, account_id, recipient, amount, w.proof(1), sender=deployer
        )


def test_checkWithdrawal_claimed_reverts(final: Any, bonded: Any, alice: Any, reverts: Any) -> None:
    seq, w = final
    _claim(bonded, seq, w, 0, sender=alice)
    account_id, recipient, amount = w.leaves[0]
    with reverts(bonded.Settlement_AlreadyClaimed, index=0):
        bonded.checkWithdrawal.transact(
            seq, 0, account_id, recipient, amount, w.proof(0), sender=alice
        )


def test_checkWithdrawal_bad_proof_reverts(
    final: Any, bonded: Any, alice: Any, reverts: Any
) -> None:
    seq, w = final
    account_id, recipient, amount = w.leaves[0]
    with reverts(bonded.Settlement_InvalidProof):
        bonded.checkWithdrawal.transact(
            seq, 0, account_id, recipient, amount + 1, w.proof(0), sender=alice
        )
