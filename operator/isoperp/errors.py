"""One exception hierarchy for isoperp.

IsoperpError
├── ConfigError                 bad settings, missing deployment file, unknown market...
├── TransitionRejected          the ledger refused a transition (state unchanged); reason code
├── ProtocolError               malformed encodings: batch data, leaves, proofs, signatures
├── InvariantViolation          a checked invariant of the state does not hold (a bug, never input)
└── ChainError                  talking to the chain failed
    ├── TransientChainError     worth retrying (timeouts, connection refused, nonce races)
    └── ContractReverted        a contract rejected the call: custom error name and args

Every error has a short machine-readable ``code`` and a one-line message: the CLI prints
``error[<code>]: <message>`` and exits non-zero, never a traceback.
"""

from __future__ import annotations

from typing import Any


class IsoperpError(Exception):
    """Root of every error isoperp raises on purpose."""

    code: str = "error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigError(IsoperpError):
    code = "config"


class TransitionRejected(IsoperpError):
    """The ledger refused a transition; nothing changed. ``code`` is the reason code."""

    code = "rejected"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, code=reason)

    @property
    def reason(self) -> str:
        return self.code


class ProtocolError(IsoperpError):
    code = "protocol"


class InvariantViolation(IsoperpError):
    """A state invariant does not hold. Never caused by user input: it means a bug."""

    code = "invariant"


class ChainError(IsoperpError):
    code = "chain"


class TransientChainError(ChainError):
    code = "chain_unavailable"
    retryable = True


class ContractReverted(ChainError):
    """A contract call reverted with a (decoded, if possible) custom error."""

    code = "reverted"

    def __init__(self, error_name: str, args: tuple[Any, ...] = (), *, context: str = "") -> None:
        self.error_name = error_name
        self.error_args = args
        shown = ", ".join(_show(a) for a in args)
        where = f"{context}: " if context else ""
        super().__init__(f"{where}reverted with {error_name}({shown})")


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
