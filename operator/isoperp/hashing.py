"""keccak256 through C: isoperp's own extension when it was built, else the safe-pysha3 binding,
else eth-hash's backend.

``isoperp.tree._fastmerkle.keccak256`` (optional, built by ``pip install``) is ~1.6x faster than
safe-pysha3 on the 33..97-byte inputs of the state tree (~0.36 vs ~0.58 us a call, which is what
the previous ``keccak256`` wrapper around ``sha3.keccak_256(data).digest()`` cost); safe-pysha3 is
~6x faster than eth-hash's default backend. ``ISOPERP_PURE_PYTHON=1`` skips the extension.
``keccak256`` is bound straight to the backend's function (no Python frame in between).
"""

from __future__ import annotations

import os
from collections.abc import Callable

keccak256: Callable[[bytes], bytes]
"""The 32-byte keccak256 digest of ``data`` (Ethereum's Keccak-256, original padding)."""
BACKEND: str

try:  # pragma: no branch - which backend is a property of the install
    from sha3 import keccak_256 as _keccak_256  # safe-pysha3

    def _pysha3_keccak256(data: bytes) -> bytes:
        digest: bytes = _keccak_256(data).digest()
        return digest

    keccak256, BACKEND = _pysha3_keccak256, "safe-pysha3"
except ImportError:  # pragma: no cover
    from eth_hash.auto import keccak as _eth_hash_keccak

    keccak256, BACKEND = _eth_hash_keccak, "eth-hash"

if os.environ.get("ISOPERP_PURE_PYTHON") != "1":  # pragma: no branch
    try:
        from isoperp.tree._fastmerkle import keccak256 as _c_keccak256
    except ImportError:  # pragma: no cover - not built: keep the binding above
        pass
    else:
        keccak256, BACKEND = _c_keccak256, "isoperp-c"
