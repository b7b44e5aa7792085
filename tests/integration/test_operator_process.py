"""The operator as a real process: killed between sending a checkpoint and its receipt, killed -9 at
random moments, and cut off from its RPC. Nothing acknowledged is lost, nothing is posted twice, and
it resumes by itself."""

import contextlib
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from chain_fixtures import free_port

from isoperp.chain.client import ChainClient, connect
from isoperp.chain.contracts import System
from isoperp.chain.deployment import Deployment
from isoperp.chain.l1 import read_checkpoints
from isoperp.ledger.transitions import Withdraw
from isoperp.service.inbox import Inbox

ISOPERP = str(Path(sys.executable).with_name("isoperp"))


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.deployment = tmp_path / "state" / "deployment.json"
        self.log = tmp_path / "operator.log"

    def args(self, *args: str) -> list[str]:
        return [ISOPERP, "--deployment", str(self.deployment), *args]

    def __call__(self, *args: str, env: dict | None = None, check: bool = True):
        import os

        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            self.args(*args), capture_output=True, text=True, env=full_env, timeout=120
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def start_operator(self, interval: str = "0.2") -> subprocess.Popen:
        out = self.log.open("a")
        return subprocess.Popen(
            self.args("operator", "run", "--interval", interval),
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def system(self, url: str | None = None) -> System:
        deployment = Deployment.load(self.deployment)
        return System(ChainClient(connect(url or deployment.rpc_url)), deployment)

    def inbox(self) -> Inbox:
        return Inbox(self.deployment.parent / "inbox.sqlite")


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path)


def crash_after_sending_a_withdrawal(net, cli):
    """Deploys, credits account 1, journals a withdrawal and kills the operator right after it
    sent the checkpoint holding it (before the receipt and the journal update)."""
    cli("deploy", "--rpc", net.url)
    cli("deposit", "100", "--account", "1")
    cli("operator", "run", "--once")
    cli("withdraw", "40", "--account", "1")
    crashed = cli(
        "operator", "run", "--once", env={"ISOPERP_FAILPOINT": "after_send:post"}, check=False
    )
    assert crashed.returncode == 137


def test_crash_between_send_and_receipt_neither_reposts_nor_skips(net, cli):
    crash_after_sending_a_withdrawal(net, cli)
    assert len(read_checkpoints(cli.system())) == 2  # the checkpoint reached the chain
    inbox = cli.inbox()
    assert [e.status for e in inbox.all()] == ["pending"]  # ...the journal never heard of it
    inbox.close()
    again = cli("operator", "run", "--once")
    assert "nothing to post" in again.stdout
    inbox = cli.inbox()
    (entry,) = inbox.all()
    assert (entry.status, entry.seq, entry.slot) == ("included", 2, 0)
    inbox.close()
    assert len(read_checkpoints(cli.system())) == 2


def test_withdrawal_signed_in_the_crash_window_gets_the_next_nonce(net, cli):
    """A withdrawal requested while the journal still says "pending" for one that reached L1 (the
    operator died before updating it) takes the nonce after it, not one beyond."""
    crash_after_sending_a_withdrawal(net, cli)
    assert "(nonce 1)" in cli("withdraw", "10", "--account", "1").stdout
    cli("operator", "run", "--once")
    inbox = cli.inbox()
    entries = inbox.all()
    inbox.close()
    assert [(e.status, e.seq) for e in entries] == [("included", 2), ("included", 3)]


def test_kill_9_at_random_moments_loses_nothing(net, cli):
    cli("deploy", "--rpc", net.url)
    for account in (1, 2):
        cli("deposit", "1000", "--account", str(account))
    cli("operator", "run", "--once")
    requests = 0
    rng = random.Random(7)
    for _round in range(4):
        for account in (1, 2):
            cli("withdraw", "1", "--account", str(account))
            requests += 1
        operator = cli.start_operator()
        time.sleep(rng.uniform(0.3, 1.2))
        operator.kill()  # SIGKILL: no cleanup, possibly mid-batch
        operator.wait()
    cli("operator", "run", "--once")
    inbox = cli.inbox()
    entries = inbox.all()
    inbox.close()
    statuses = [e.status for e in entries]
    assert statuses == ["included"] * requests, [
        (e.id, e.status, e.reason) for e in entries if e.status != "included"
    ]
    checkpoints = read_checkpoints(cli.system())
    assert [cp.header.seq for cp in checkpoints] == list(range(1, len(checkpoints) + 1))
    seen = [
        (t.account_id, t.nonce)
        for cp in checkpoints
        for t in cp.transitions
        if isinstance(t, Withdraw)
    ]
    assert len(seen) == len(set(seen)) == requests  # each acknowledged request exactly once


class PausableProxy:
    """A TCP proxy to the devnet that can drop every connection and refuse new ones (an outage)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.server: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.resume()

    def resume(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def pause(self) -> None:
        assert self.server is not None
        with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self.conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def test_rpc_outage_operator_waits_and_resumes(net, cli):
    proxy = PausableProxy(net.port)
    via_proxy = f"http://127.0.0.1:{proxy.port}"
    cli("deploy", "--rpc", via_proxy)
    direct = cli.system(net.url)
    operator = cli.start_operator()
    try:
        cli("deposit", "50", "--account", "1")
        deadline = time.monotonic() + 20
        # The cycle is over (receipt in, journal updated) once it says so: the outage then hits
        # the loop, not the receipt poll (which rides out short outages by itself).
        while "posted checkpoint #1" not in cli.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(read_checkpoints(direct)) == 1
        proxy.pause()
        cli("--rpc", net.url, "deposit", "60", "--account", "2")  # straight to the chain
        time.sleep(2.5)
        assert operator.poll() is None, "the operator must wait, not exit"
        assert len(read_checkpoints(direct)) == 1
        proxy.resume()
        deadline = time.monotonic() + 40
        while len(read_checkpoints(direct)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(read_checkpoints(direct)) == 2, cli.log.read_text()
        assert "chain unavailable" in cli.log.read_text()
    finally:
        operator.kill()
        operator.wait()
        proxy.pause()


def test_batch_fills_posts_as_soon_as_n_fills_wait(net, cli):
    """With --interval 600 --batch-fills 2 a checkpoint can only appear within the test's wait
    because two fills were waiting."""
    from isoperp.devnet import devnet_account
    from isoperp.ledger.transitions import MarginTransfer, PlaceOrder
    from isoperp.protocol.constants import TIF_IOC
    from isoperp.protocol.signing import sign_request

    cli("deploy", "--rpc", net.url)
    for account in (1, 2):
        cli("deposit", "1000", "--account", str(account))
    cli("operator", "run", "--once")
    system = cli.system()
    alice, bob = devnet_account(1), devnet_account(2)
    inbox = cli.inbox()
    for who, account_id in ((alice, 0), (bob, 1)):
        margin = MarginTransfer(account_id, 0, 500 * 10**6, 0, b"")
        inbox.submit(sign_request(bytes(who.key), system.domain, margin))
    cli("operator", "run", "--once")
    operator = subprocess.Popen(
        cli.args("operator", "run", "--interval", "600", "--batch-fills", "2", "--no-api"),
        stdout=cli.log.open("a"),
        stderr=subprocess.STDOUT,
    )

    def cross(nonce):
        buy = PlaceOrder(1, 0, True, 600_000, 100, 0, 0, nonce, 0, b"")
        sell = PlaceOrder(0, 0, False, 600_000, 100, TIF_IOC, 0, nonce, 0, b"")
        inbox.submit(sign_request(bytes(bob.key), system.domain, buy))
        inbox.submit(sign_request(bytes(alice.key), system.domain, sell))

    try:
        deadline = time.monotonic() + 60  # "operator running" follows its first (due) cycle
        while "operator running" not in cli.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        cross(1)
        time.sleep(2)  # ten looks at the journal: one fill is not enough
        assert len(read_checkpoints(system)) == 2
        cross(2)
        deadline = time.monotonic() + 60
        while len(read_checkpoints(system)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        checkpoints = read_checkpoints(system)
        assert len(checkpoints) == 3, cli.log.read_text()
        kinds = [type(t).__name__ for t in checkpoints[-1].transitions]
        assert kinds.count("Fill") == 2
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        inbox.close()
    assert "or 2 fills" in cli.log.read_text()
