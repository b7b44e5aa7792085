"""isoperp: isolated-margin perpetual futures, off-chain operator, on-chain settlement."""

__version__ = "0.1.0"
