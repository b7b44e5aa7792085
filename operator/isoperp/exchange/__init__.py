"""The exchange: signed orders, matching, margin, funding and liquidations over the ledger."""
