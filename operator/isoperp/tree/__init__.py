"""Fixed-depth sparse Merkle trees (keccak, salted leaves and nodes)."""
