"""Compiled contract artifacts: read from ape's build manifest (``.build/__local__.json``).

``ape compile`` (run by ``make setup``) writes the manifest; when it is missing or older than the
sources, ``load_artifacts`` runs ``ape compile`` once through the project's solc launcher.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from isoperp.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def project_root() -> Path:
    """The repository root: $ISOPERP_PROJECT, else the checkout this package lives in, else cwd."""
    env = os.environ.get("ISOPERP_PROJECT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[3]
    if (here / "ape-config.yaml").exists():
        return here
    return Path.cwd()


def _stale(manifest: Path, contracts: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in contracts.rglob("*.sol"))


def compile_contracts(root: Path) -> None:
    env = dict(os.environ)
    env.setdefault("SOLCX_BINARY_PATH", str(root / ".solcx"))
    ape = Path(sys.executable).with_name("ape")
    logger.info("compiling contracts with %s", ape)
    proc = subprocess.run(
        # --force: ape's incremental build does not rebuild the Settlement when only the EscapeHatch
        # or CollateralVault changed, though it embeds their creation code.
        [str(ape), "compile", "--force"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"ape compile failed in {root}: {tail[0]}", code="compile_failed")


@cache
def load_artifacts(root: Path | None = None) -> dict[str, Artifact]:
    root = root or project_root()
    manifest = root / ".build" / "__local__.json"
    if _stale(manifest, root / "contracts"):
        compile_contracts(root)
    if not manifest.exists():
        raise ConfigError(f"no build manifest at {manifest}; run `make setup`", code="no_artifacts")
    data = json.loads(manifest.read_text())
    out: dict[str, Artifact] = {}
    for name, ct in data.get("contractTypes", {}).items():
        bytecode = (ct.get("deploymentBytecode") or {}).get("bytecode") or "0x"
        out[name] = Artifact(name=name, abi=ct.get("abi", []), bytecode=bytecode)
    return out


def artifact(name: str) -> Artifact:
    arts = load_artifacts()
    if name not in arts:
        raise ConfigError(f"contract {name} not found in the build manifest", code="no_artifacts")
    return arts[name]
