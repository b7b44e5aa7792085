"""isoperp: an isolated-margin perpetual-futures exchange with an off-chain operator and on-chain settlement."""

__version__ = "0.1.0"
