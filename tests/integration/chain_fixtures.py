"""Helpers shared by the integration tests (the conftest puts this folder on sys.path)."""

import socket

from isoperp.demo import USDC, _deposit
from isoperp.devnet import devnet_account
from isoperp.ledger.transitions import MarginTransfer, Withdraw
from isoperp.protocol.signing import request_digest, sign_digest, sign_request
from isoperp.service.operator import OperatorService


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_withdraw(system, user, account_id, amount, nonce):
    """A withdrawal of ``amount`` from ``account_id`` to ``user``, signed by ``user``."""
    unsigned = Withdraw(account_id, user.address, amount, nonce, b"")
    sig = sign_digest(bytes(user.key), request_digest(system.domain, unsigned))
    return Withdraw(account_id, user.address, amount, nonce, sig)


def two_traders(system, inbox):
    """Accounts 0 (alice) and 1 (bob) with 10,000 USDC each, 2,000 of it as margin in market 0,
    credited by two checkpoints; returns (operator service, alice, bob)."""
    alice, bob = devnet_account(1), devnet_account(2)
    for who in (alice, bob):
        _deposit(system, who, 10_000 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    for who, account_id in ((alice, 0), (bob, 1)):
        margin = MarginTransfer(account_id, 0, 2_000 * USDC, 0, b"")
        inbox.submit(sign_request(bytes(who.key), system.domain, margin))
    service.run_once()
    return service, alice, bob
