"""The local devnet: an anvil process started in the background, its test accounts, time travel."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount

from isoperp.chain.artifacts import project_root
from isoperp.errors import ConfigError

logger = logging.getLogger(__name__)

DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8545
DEVNET_CHAIN_ID = 31337

Account.enable_unaudited_hdwallet_features()


def devnet_account(index: int) -> LocalAccount:
    """Test account ``index`` of anvil's default mnemonic (0 is the deployer and operator)."""
    if not 0 <= index < 100:
        raise ConfigError(f"devnet account index must be in [0, 100), got {index}")
    return Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def find_anvil() -> str:
    """anvil on PATH, else the binary npm installed in this checkout."""
    found = shutil.which("anvil")
    if found:
        return found
    for candidate in sorted(
        (project_root() / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")
    ):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise ConfigError(
        "anvil not found: run `make setup` (it installs @foundry-rs/anvil)", code="no_anvil"
    )


def rpc(url: str, method: str, params: list[object] | None = None, timeout: float = 5) -> object:
    """One raw JSON-RPC call (for anvil_/evm_ methods web3 does not wrap)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    try:
        reply = requests.post(url, json=body, timeout=timeout).json()
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ConfigError(f"no devnet answering at {url}", code="devnet_down") from exc
    if "error" in reply:
        raise ConfigError(f"{method}: {reply['error'].get('message')}", code="rpc_error")
    return reply.get("result")


def is_up(url: str) -> bool:
    try:
        rpc(url, "eth_chainId", timeout=1)
    except ConfigError:
        return False
    return True


def advance_time(url: str, seconds: int) -> int:
    """Moves the devnet clock forward ``seconds`` and mines a block; returns the new time."""
    if seconds < 0:
        raise ConfigError("time only moves forward on anvil")
    rpc(url, "evm_increaseTime", [seconds])
    rpc(url, "evm_mine")
    block = rpc(url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(block, dict)
    return int(block["timestamp"], 16)


@dataclass(frozen=True, slots=True)
class Devnet:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    state_dir: Path = Path(".isoperp")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / f"anvil-{self.port}.pid"

    @property
    def logfile(self) -> Path:
        return self.state_dir / f"anvil-{self.port}.log"

    def up(self, *, block_time: int | None = None, timeout_s: float = 20) -> int:
        """Starts anvil in the background; returns its pid."""
        if is_up(self.url):
            raise ConfigError(
                f"something already answers at {self.url} (devnet already up?)",
                code="devnet_running",
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            find_anvil(),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--mnemonic",
            DEVNET_MNEMONIC,
            "--accounts",
            "10",
            "--balance",
            "10000",
            "--chain-id",
            str(DEVNET_CHAIN_ID),
        ]
        if block_time:
            cmd += ["--block-time", str(block_time)]
        with self.logfile.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ConfigError(
                    f"anvil exited with {proc.returncode}; see {self.logfile}", code="devnet_failed"
                )
            if is_up(self.url):
                logger.info("anvil %d up at %s", proc.pid, self.url)
                return proc.pid
            time.sleep(0.1)
        proc.kill()
        raise ConfigError(
            f"anvil did not answer within {timeout_s}s; see {self.logfile}", code="devnet_failed"
        )

    def down(self) -> bool:
        """Stops the anvil this devnet started; False if none was running."""
        if not self.pidfile.exists():
            return False
        pid = int(self.pidfile.read_text().strip() or 0)
        self.pidfile.unlink()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        for _ in range(50):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        return True
