"""The report of `make demo`: ``report.json`` (every figure and time series) and ``report.png``
(price with liquidation markers, open interest and fills, checkpoint finality), both computed from
a ``DemoResult``. Times in the series are chain times (seconds); ``t`` in the chart is seconds
since the first simulator step. Prices are BTC-USD ticks ($0.10), sizes lots (0.00001 BTC),
amounts micro-USDC, as on L1; the chart shows dollars and BTC."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import StrMethodFormatter

from isoperp.demo_market import BTC, DemoResult
from isoperp.exchange.instruments import by_id

JSON_NAME = "report.json"
PNG_NAME = "report.png"
EVENT_STYLE = {  # kind -> (marker, colour, label)
    "liquidation": ("v", "tab:red", "liquidation (book)"),
    "backstop": ("X", "tab:orange", "backstop (insurance fund)"),
    "deleverage": ("D", "tab:purple", "deleverage"),
}


def summary(result: DemoResult) -> dict[str, Any]:
    """The headline figures (also the summary table of `isoperp demo`)."""
    stats, totals = result.market.stats, result.market.totals
    return {
        "fills": result.fills,
        "fill_volume_lots": result.fill_volume,
        "checkpoints": len(result.audit.checkpoints),
        "checkpoints_market_phase": len(result.market_checkpoints),
        "checkpoints_with_fills": sum(1 for c in result.audit.checkpoints if c.fills),
        "gas_checkpoints_with_fills": result.gas_fill_checkpoints,
        "gas_per_fill": result.gas_per_fill,
        "liquidations": result.count("liquidation"),
        "backstops": result.count("backstop"),
        "deleverages": result.count("deleverage"),
        "insurance_fund": result.insurance_fund,
        "fee_balance": result.audit.ledger.exchange.fee_balance,
        "open_interest_lots": _open_interest(result),
        "vault_balance": result.vault_balance,
        "total_liabilities": result.liabilities,
        "orders": stats.orders,
        "cancels": stats.cancels,
        "accepted": stats.accepted,
        "rejected_by_api": result.rejected,
        "rejected_by_operator": result.operator_rejected,
        "margin_refills": result.market.refills,
        "operator_cycles": totals.cycles,
        "transient_errors": totals.transient_errors,
        "latest_seq": result.finality.latest_seq,
        "last_finalized_seq": result.finality.last_finalized_seq,
        "time_travel_s": result.finality.advanced_s,
        "crash": {
            "step": result.options.crash_step,
            "chain_time": result.market.crash_time,
            "from_ticks": result.market.crash_from,
            "to_ticks": result.market.crash_to,
        },
        "duration_s": round(result.duration_s, 1),
        "trading_wall_s": round(result.market.wall_s, 1),
    }


def _open_interest(result: DemoResult) -> int:
    return result.audit.checkpoints[-1].open_interest if result.audit.checkpoints else 0


def report_json(result: DemoResult) -> dict[str, Any]:
    stats = result.market.stats
    return {
        "generated_at": dt.datetime.fromtimestamp(result.started_at, dt.UTC).isoformat(),
        "rpc_url": result.rpc_url,
        "api_url": result.market.api_url,
        "deployment": result.deployment,
        "challenge_window_s": result.challenge_window,
        "options": {
            **dataclasses.asdict(result.options),
            "crash_step": result.options.crash_step,
            "alice_step": result.options.alice_step,
        },
        "units": {
            "price": "BTC-USD ticks of $0.10",
            "size": "lots of 0.00001 BTC",
            "amount": "micro-USDC",
            "time": "chain time, seconds",
        },
        "summary": summary(result),
        "story": dataclasses.asdict(result.story),
        "checks": result.checks,
        "series": {
            "oracle_prices": [[t, p] for t, p in stats.prices],
            "checkpoints": [dataclasses.asdict(c) for c in result.audit.checkpoints],
            "risk_events": [dataclasses.asdict(e) for e in result.audit.events],
            "progress": [dataclasses.asdict(f) for f in result.market.progress],
        },
        "finality": dataclasses.asdict(result.finality),
    }


def _price_panel(ax: Axes, result: DemoResult, t0: int) -> None:
    inst = by_id(BTC)
    scale = 10**inst.price_decimals
    prices = result.market.stats.prices
    ax.plot(
        [t - t0 for t, _ in prices],
        [p / scale for _, p in prices],
        color="tab:blue",
        lw=1.6,
        label="oracle mark",
    )
    crash_t = result.market.crash_time - t0
    ax.axvline(crash_t, color="grey", ls="--", lw=1)
    ax.annotate(
        f"flash crash -{result.options.crash_pct}% ",
        (crash_t, (result.market.crash_from + result.market.crash_to) / 2 / scale),
        xytext=(-8, 0),
        textcoords="offset points",
        fontsize=9,
        color="dimgrey",
        ha="right",
    )
    for kind, (marker, colour, label) in EVENT_STYLE.items():
        events = [e for e in result.audit.events if e.kind == kind and e.timestamp >= t0]
        if events:
            ax.scatter(
                [e.timestamp - t0 for e in events],
                [e.price / scale for e in events],
                marker=marker,
                color=colour,
                s=60,
                zorder=3,
                label=f"{label} ×{len(events)}",
            )
    ax.yaxis.set_major_formatter(StrMethodFormatter("${x:,.0f}"))
    ax.set_ylabel(inst.symbol)
    ax.set_title(f"{inst.symbol}: mark price and liquidations")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)


def _open_interest_panel(ax: Axes, result: DemoResult, t0: int) -> None:
    size_scale = 10 ** by_id(BTC).size_decimals
    market = [c for c in result.audit.checkpoints if c.posted_at >= t0]
    times = [c.posted_at - t0 for c in market]
    ax.step(
        times,
        [c.open_interest / size_scale for c in market],
        where="post",
        color="tab:green",
        lw=1.6,
        label="open interest",
    )
    ax.set_ylabel("open interest (BTC)")
    ax.set_xlabel("t (s since trading started, chain time)")
    ax.grid(alpha=0.3)
    fills = ax.twinx()
    fills.bar(times, [c.fills for c in market], width=0.6, color="tab:grey", alpha=0.35)
    fills.set_ylabel("fills per checkpoint", color="dimgrey")
    ax.set_title(
        f"open interest after each checkpoint; {result.fills} fills in "
        f"{sum(1 for c in result.audit.checkpoints if c.fills)} checkpoints"
    )
    ax.axvline(result.market.crash_time - t0, color="grey", ls="--", lw=1)


def _finality_panel(ax: Axes, result: DemoResult, t0: int) -> None:
    cps = result.audit.checkpoints
    ax.hlines(
        [c.seq for c in cps],
        [c.posted_at - t0 for c in cps],
        [c.finalizes_at - t0 for c in cps],
        color="tab:blue",
        lw=1.2,
        label=f"challenge window ({result.challenge_window}s)",
    )
    ax.scatter([c.posted_at - t0 for c in cps], [c.seq for c in cps], s=6, color="tab:blue")
    ax.scatter(
        [c.finalizes_at - t0 for c in cps],
        [c.seq for c in cps],
        s=10,
        marker="|",
        color="tab:green",
        label="final at",
    )
    ax.axvline(
        result.finality.chain_time - t0,
        color="tab:red",
        ls="--",
        lw=1,
        label=f"after the time travel (+{result.finality.advanced_s}s): "
        f"all {result.finality.latest_seq} final",
    )
    ax.set_xlabel("t (s, chain time; the story's checkpoints precede trading)")
    ax.set_ylabel("checkpoint seq")
    ax.set_title("checkpoint finality: posted -> final")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def write_png(result: DemoResult, path: Path) -> None:
    prices = result.market.stats.prices
    t0 = prices[0][0] if prices else 0
    # The object API with the Agg canvas: no pyplot, no global figure state, no display.
    fig = Figure(figsize=(11, 11))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, height_ratios=[3, 2, 2])
    _price_panel(axes[0], result, t0)
    _open_interest_panel(axes[1], result, t0)
    axes[0].set_xlim(axes[1].get_xlim())
    _finality_panel(axes[2], result, t0)
    fig.suptitle(
        f"isoperp demo: {result.options.seconds}s of simulated trading on anvil, "
        f"gas per fill {result.gas_per_fill:,}",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_report(result: DemoResult, out_dir: Path) -> tuple[Path, Path]:
    """Writes ``report.json`` and ``report.png`` into ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / JSON_NAME, out_dir / PNG_NAME
    json_path.write_text(json.dumps(report_json(result), indent=2) + "\n")
    write_png(result, png_path)
    return json_path, png_path
