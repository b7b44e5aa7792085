"""Benchmarks (`isoperp bench ...`): measured, never asserted in tests."""
