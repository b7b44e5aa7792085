"""The `isoperp` command line."""
