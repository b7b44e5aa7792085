"""The deployment file: where the system lives. Written by deploy, read by every command."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from isoperp.errors import ConfigError

DEFAULT_STATE_DIR = Path(".isoperp")
DEFAULT_DEPLOYMENT = DEFAULT_STATE_DIR / "deployment.json"


@dataclass(frozen=True, slots=True)
class Deployment:
    """Addresses and parameters of one deployed isoperp system."""

    chain_id: int
    rpc_url: str
    settlement: str
    vault: str
    token: str
    operator: str
    deploy_block: int
    challenge_window: int
    min_bond: int
    genesis_state_root: str
    # Escape-hatch parameters; devnet defaults, so files written before them still load.
    oracle: str = ""
    forced_deadline: int = 300
    liveness_timeout: int = 1800
    forced_request_fee: int = 10**15
    # The EscapeHatch the Settlement created ("" in files written before it: read from the chain).
    escape_hatch: str = ""
    claim_window: int = 600
    # The DisputeGame, the Settlement's `disputes` ("" in files written before it: read it from
    # the chain).
    disputes: str = ""

    def save(self, path: Path = DEFAULT_DEPLOYMENT) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path = DEFAULT_DEPLOYMENT) -> Deployment:
        if not path.exists():
            raise ConfigError(
                f"no deployment file at {path}: run `isoperp deploy` first", code="no_deployment"
            )
        try:
            raw = json.loads(path.read_text())
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"deployment file {path} is malformed: {exc}", code="bad_deployment"
            ) from exc
