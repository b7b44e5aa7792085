"""Market simulation against a running operator (`isoperp sim`)."""
