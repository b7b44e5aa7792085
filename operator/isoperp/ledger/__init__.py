"""The deterministic ledger: integer domain model and the state transition function (no I/O)."""
