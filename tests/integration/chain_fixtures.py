"""Helpers shared by the integration tests (the conftest puts this folder on sys.path)."""

from isoperp.ledger.transitions import Withdraw
from isoperp.protocol.signing import request_digest, sign_digest


def signed_withdraw(system, user, account_id, amount, nonce):
    """A withdrawal of ``amount`` from ``account_id`` to ``user``, signed by ``user``."""
    unsigned = Withdraw(account_id, user.address, amount, nonce, b"")
    sig = sign_digest(bytes(user.key), request_digest(system.domain, unsigned))
    return Withdraw(account_id, user.address, amount, nonce, sig)
