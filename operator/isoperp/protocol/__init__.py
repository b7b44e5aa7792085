"""Wire formats shared with the Solidity contracts (docs/PROTOCOL.md is the specification)."""
