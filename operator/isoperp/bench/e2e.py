"""End to end (``isoperp bench e2e``): signed orders over HTTP into a running operator that posts
checkpoints to anvil.

Setup (untimed): a fresh anvil, the system deployed, traders funded on-chain, margin moved in,
the operator looping in a thread (a cycle every ``cycle_s``) with the API in front of it. The
workload is generated and signed up front (signing is the client's cost): per trader, resting
orders a few ticks behind the mid, IOC orders that cross, and cancels of old resting orders,
interleaved. ``clients`` threads post them, each request timed from send to its 202 (the journal
entry is durable by then). Reported: acknowledged orders/s over the run, fills/s checkpointed on
L1 during the run, p50/p99 acknowledgement latency, and gas per fill of each checkpoint that
carried fills (with its batch size).

The API's abuse limits are raised for the run (they would otherwise cap each trader at 20
req/s): this measures capacity, not the limiter."""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from isoperp.api.app import create_app
from isoperp.api.bridge import OperatorBridge
from isoperp.api.server import ApiServer
from isoperp.api.state import ApiLimits
from isoperp.chain.client import ChainClient, Web3Deployer, connect
from isoperp.chain.contracts import System
from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.demo import USDC, _deposit, local_devnet
from isoperp.devnet import devnet_account
from isoperp.ledger.transitions import CancelOrder, Fill, MarginTransfer, PlaceOrder
from isoperp.protocol.constants import TIF_GTC, TIF_IOC
from isoperp.protocol.signing import sign_request
from isoperp.service.inbox import Inbox
from isoperp.service.operator import CycleReport, OperatorService
from isoperp.sim.market import _body

MID = 600_000
TRADERS = tuple(range(1, 9))


@dataclass
class E2EReport:
    seconds: float
    orders: int
    acked: int
    rejected: dict[str, int]
    fills: int
    checkpoints: int
    ops_per_s: float
    fills_per_s: float
    p50_us: float
    p99_us: float
    gas_per_fill: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "bench": "e2e",
            "seconds": round(self.seconds, 2),
            "orders": self.orders,
            "acked": self.acked,
            "rejected": self.rejected,
            "ops_per_s": round(self.ops_per_s),
            "fills": self.fills,
            "fills_per_s": round(self.fills_per_s, 1),
            "checkpoints": self.checkpoints,
            "p50_us": round(self.p50_us),
            "p99_us": round(self.p99_us),
            "gas_per_fill": self.gas_per_fill,
        }


def _workload(
    system: System, ids: dict[int, int], per_trader: int, seed: int
) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) pairs: resting orders behind the mid, crossing IOC orders, and cancels of a
    trader's oldest resting order so that no trader ever holds more than 48 of its 64 slots."""
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    resting: dict[int, list[int]] = {i: [] for i in TRADERS}
    for round_ in range(per_trader):
        for i in TRADERS:
            key = bytes(devnet_account(i).key)
            if len(resting[i]) >= 48:
                cancel = CancelOrder(ids[i], resting[i].pop(0), b"")
                out.append(("cancels", _body(sign_request(key, system.domain, cancel))))
                continue
            is_buy = rng.random() < 0.5
            nonce = round_ + 1
            if rng.random() < 0.7:  # rests behind the mid
                offset = rng.randrange(1, 20) * 10
                price = MID - offset if is_buy else MID + offset
                tif = TIF_GTC
                resting[i].append(nonce)
            else:  # crosses
                price, tif = (MID + 300 if is_buy else MID - 300), TIF_IOC
            order = PlaceOrder(ids[i], 0, is_buy, price, 100, tif, 0, nonce, 0, b"")
            out.append(("orders", _body(sign_request(key, system.domain, order))))
    return out


def _operator_loop(
    service: OperatorService,
    bridge: OperatorBridge,
    journal: Path,
    stop: threading.Event,
    cycle_s: float,
    reports: list[CycleReport],
) -> None:
    service.inbox = Inbox(journal)  # sqlite connections belong to the thread that opened them
    try:
        while not stop.is_set():
            reports.append(service.run_once())
            bridge.refresh()
            stop.wait(cycle_s)
    finally:
        service.inbox.close()


def _fills_and_gas(reports: list[CycleReport]) -> tuple[int, list[dict[str, int]]]:
    """Fills checkpointed, and gas per fill of each checkpoint that carried fills."""
    fills = 0
    rows = []
    for r in reports:
        if r.posted is None:
            continue
        n = sum(1 for t in r.posted.transitions if isinstance(t, Fill))
        fills += n
        if n:
            rows.append(
                {
                    "fills": n,
                    "gas": r.gas_used,
                    "gas_per_fill": r.gas_used // n,
                    "batch_bytes": len(r.posted.data),
                }
            )
    return fills, rows


def run_e2e_bench(
    *, seconds: float = 15.0, clients: int = 4, cycle_s: float = 1.0, port: int, seed: int = 1
) -> E2EReport:
    with (
        tempfile.TemporaryDirectory(prefix="isoperp-e2e-") as tmp,
        local_devnet(Path(tmp), port) as net,
    ):
        client = ChainClient(connect(net.url), devnet_account(0))
        deployment = deploy_system(Web3Deployer(client), DeployParams(), rpc_url=net.url)
        system = System(client, deployment)
        journal = Path(tmp) / "inbox.sqlite"
        inbox = Inbox(journal)
        service = OperatorService(system, inbox)
        for i in TRADERS:
            _deposit(system, devnet_account(i), 1_000_000 * USDC)
        service.run_once()
        ids = {i: service.ledger.account_id_of(devnet_account(i).address) for i in TRADERS}
        for i, account_id in ids.items():
            assert account_id is not None
            margin = MarginTransfer(account_id, 0, 200_000 * USDC, 0, b"")
            inbox.submit(sign_request(bytes(devnet_account(i).key), system.domain, margin))
        service.run_once()
        account_ids = {i: a for i, a in ids.items() if a is not None}
        for a, b in zip(TRADERS[::2], TRADERS[1::2], strict=True):  # open positions (nonce 0)
            for who, is_buy, tif in ((a, False, TIF_GTC), (b, True, TIF_IOC)):
                order = PlaceOrder(account_ids[who], 0, is_buy, MID, 100_000, tif, 0, 0, 0, b"")
                inbox.submit(sign_request(bytes(devnet_account(who).key), system.domain, order))
        service.run_once()
        work = _workload(system, account_ids, per_trader=400, seed=seed)
        bridge = OperatorBridge.for_system(service, system)
        limits = ApiLimits(account_rate=1e6, account_burst=10**6, ip_rate=1e6, ip_burst=10**6)
        app = create_app(bridge.api_state(lambda: Inbox(journal), limits=limits))
        server = ApiServer(app, port=0).start()
        bridge.refresh()
        inbox.close()  # the operator thread opens its own connection
        stop = threading.Event()
        reports: list[CycleReport] = []
        loop = threading.Thread(
            target=_operator_loop,
            args=(service, bridge, journal, stop, cycle_s, reports),
            daemon=True,
        )
        latencies: list[int] = []
        rejected: dict[str, int] = {}
        lock = threading.Lock()
        cursor = iter(work)
        deadline = time.monotonic() + seconds

        def client_thread() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                while time.monotonic() < deadline:
                    with lock:
                        item = next(cursor, None)
                    if item is None:
                        return
                    path, body = item
                    t0 = time.perf_counter_ns()
                    reply = http.post(f"/v1/{path}", json=body)
                    elapsed = time.perf_counter_ns() - t0
                    with lock:
                        if reply.status_code == 202:
                            latencies.append(elapsed)
                        else:
                            code = reply.json().get("error", {}).get("code", str(reply.status_code))
                            rejected[code] = rejected.get(code, 0) + 1

        started = time.monotonic()
        first_seq = len(service.checkpoints)
        loop.start()
        threads = [threading.Thread(target=client_thread) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed_s = time.monotonic() - started
        time.sleep(cycle_s * 1.5)  # let the operator checkpoint what was acknowledged
        stop.set()
        loop.join(timeout=30)
        server.stop()
        fills, gas_rows = _fills_and_gas(reports)
        latencies.sort()
        acked = len(latencies)
        return E2EReport(
            seconds=elapsed_s,
            orders=acked + sum(rejected.values()),  # requests: orders and cancels
            acked=acked,
            rejected=rejected,
            fills=fills,
            checkpoints=len(service.checkpoints) - first_seq,
            ops_per_s=acked / elapsed_s if elapsed_s else 0.0,
            fills_per_s=fills / elapsed_s if elapsed_s else 0.0,
            p50_us=statistics.median(latencies) / 1e3 if latencies else 0.0,
            p99_us=latencies[int(len(latencies) * 0.99)] / 1e3 if latencies else 0.0,
            gas_per_fill=gas_rows,
        )
