"""The batch builder serving a real Settlement's forced-request queue (anvil).

Forced requests are queued on-chain; the operator side builds FORCED_WITHDRAW / FORCED_EXIT records
from the ``ForcedRequested`` events (``forced_request``), and the checkpoint the builder seals must
carry the contract's own prefix hash and cursor (the Settlement accepts it), while its withdrawals
tree pays the forced payouts (claimable once final). A record that differs from its queue entry
gives another prefix hash, which the Settlement rejects.
"""

from __future__ import annotations

import ape

from isoperp.batch.builder import BatchBuilder
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.transitions import Deposit, MarginTransfer, forced_request
from isoperp.protocol.header import CheckpointHeader, WithdrawalLeaf
from isoperp.protocol.leaves import encode_market
from isoperp.protocol.signing import Domain, sign_request

WINDOW = 600
FORCED_DEADLINE = 300
LIVENESS = 1800
CLAIM_WINDOW = 600
FEE = 10**15
BOND = 10**18
USDC = 10**6


def _event(receipt, name):
    return next(e for e in receipt.events if e.event_name == name)


def test_builder_serves_the_settlement_queue_and_pays_through_withdrawals(
    project, accounts, chain
):
    deployer, operator, alice, bob, stranger = (accounts[i] for i in range(5))
    genesis_root = Ledger.genesis(
        DEVNET_MARKETS, Domain(0, "0x" + "00" * 20), DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR
    )
    usdc = deployer.deploy(project.MockUSDC)
    settlement = deployer.deploy(
        project.Settlement,
        usdc,
        operator,
        DEVNET_ORACLE,
        stranger,  # disputes: a plain account (no dispute here)
        BOND,
        (WINDOW, FORCED_DEADLINE, LIVENESS, CLAIM_WINDOW),  # ISettlement.Periods
        FEE,
        genesis_root.state_root,
        [encode_market(m) for m in DEVNET_MARKETS],
        [m.symbol for m in DEVNET_MARKETS],
    )
    settlement.postBond(sender=operator, value=BOND)
    vault = project.CollateralVault.at(settlement.vault())
    hatch = project.EscapeHatch.at(settlement.escapeHatch())
    domain = Domain(chain.chain_id, settlement.address)
    ledger = Ledger.genesis(DEVNET_MARKETS, domain, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)
    builder = BatchBuilder(ledger, CheckpointHeader.genesis(ledger.state_root))

    for who in (alice, bob):
        usdc.mint(who, 100 * USDC, sender=who)
        usdc.approve(vault, 100 * USDC, sender=who)
        d = _event(vault.deposit(who, 100 * USDC, sender=who), "Deposited")
        builder.add(Deposit(int(d.index), int(d.index), d.owner, int(d.amount), int(d.timestamp)))
    move = MarginTransfer(1, 0, 30 * USDC, 0, b"")  # bob parks 30 USDC in BTC-USD, flat
    builder.add(sign_request(bytes.fromhex(bob.private_key[2:]), domain, move))

    requests = [
        hatch.requestForcedWithdrawal(0, 40 * USDC, sender=alice, value=FEE),
        hatch.requestForcedWithdrawal(0, 5, sender=stranger, value=FEE),  # not the owner
        hatch.requestForcedExit(1, 0, sender=bob, value=FEE),  # pays the parked margin
        hatch.requestForcedExit(1, 1, sender=bob, value=FEE),  # no ETH-USD position
        hatch.requestForcedWithdrawal(1, (1 << 128) - 1, sender=bob, value=FEE),  # all of it
    ]
    events = [_event(r, "ForcedRequested") for r in requests]
    # (ape wraps event integers in its own int subclass; the ledger takes plain ints only)
    transitions = [
        forced_request(
            int(e.index), int(e.kind), e.requester, int(e.accountId), int(e.marketId),
            int(e.amount), int(e.timestamp),
        )
        for e in events
    ]
    paid = []
    for t, e in zip(transitions, events, strict=True):
        paid.append(builder.add(t).paid)
        assert builder.forced_prefix_hash == bytes(e.prefixHash)  # the event's r_{index+1}
    assert paid == [40 * USDC, 0, 30 * USDC, 0, 70 * USDC]
    sealed = builder.seal(timestamp=chain.blocks.head.timestamp)
    header = sealed.header
    assert header.forced_cursor == 5 == hatch.forcedRequestCount()
    assert header.forced_prefix_hash == bytes(events[-1].prefixHash)
    assert header.forced_prefix_hash == bytes(hatch.forcedPrefixHash(5))
    assert sealed.withdrawals == (
        WithdrawalLeaf(0, alice.address, 40 * USDC),
        WithdrawalLeaf(1, bob.address, 30 * USDC),
        WithdrawalLeaf(1, bob.address, 70 * USDC),
    )

    # a record that differs from its queue entry (another amount) changes the prefix hash
    other = Ledger.genesis(DEVNET_MARKETS, domain, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)
    forged = BatchBuilder(other, CheckpointHeader.genesis(other.state_root))
    for t in sealed.transitions[:3]:
        forged.add(t)
    forged.add(forced_request(0, 1, alice.address, 0, 0, 41 * USDC, int(events[0].timestamp)))
    bad = forged.seal(timestamp=chain.blocks.head.timestamp)
    assert bad.header.forced_cursor == 1 and bad.header.forced_prefix_hash != bytes(
        hatch.forcedPrefixHash(1)
    )
    with ape.reverts(settlement.Settlement_ForcedPrefixMismatch):
        settlement.postCheckpoint(bad.header.as_abi_tuple(), bad.data, sender=operator)

    settlement.postCheckpoint(header.as_abi_tuple(), sealed.data, sender=operator)
    posted = settlement.getCheckpoint(1)
    assert (posted.forcedCursor, bytes(posted.checkpointHash)) == (5, header.hash)

    assert (bytes(posted.withdrawalsRoot), posted.withdrawalCount) == (
        ledger.exchange.withdrawals_root,
        3,
    )
    assert settlement.cumulativeWithdrawalTotal(1) == ledger.exchange.withdrawal_total

    chain.pending_timestamp += WINDOW
    chain.mine()
    tree = ledger.withdrawals_tree(header.withdrawal_count)  # the depth-32 global tree
    for index, leaf in enumerate(sealed.withdrawals):
        recipient = alice if leaf.recipient == alice.address else bob
        before = usdc.balanceOf(recipient)
        settlement.claimWithdrawal(
            1, index, leaf.account_id, leaf.recipient, leaf.amount,
            tree.proof(index), sender=stranger,
        )
        assert usdc.balanceOf(recipient) == before + leaf.amount
    assert ledger.account(0).collateral == 60 * USDC and ledger.account(1).collateral == 0
