"""Talking to the chain: deployment, transactions, events."""
