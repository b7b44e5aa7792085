"""The operator's HTTP + WebSocket API: ``create_app(ApiState(...))``; see ``app``."""

from isoperp.api.app import create_app
from isoperp.api.feed import Feed
from isoperp.api.state import ApiLimits, ApiState, CheckpointView, ForcedRequestView, TradeView

__all__ = [
    "ApiLimits",
    "ApiState",
    "CheckpointView",
    "Feed",
    "ForcedRequestView",
    "TradeView",
    "create_app",
]
