"""create_address: the CREATE address the deploy precomputes for the DisputeGame (the Settlement
names it before it exists)."""

import pytest
import rlp
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from isoperp.chain.deploy import create_address

ANVIL_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_known_anvil_deployments():
    """The addresses anvil's account 0 deploys to at its first four nonces."""
    assert [create_address(ANVIL_0, n) for n in range(4)] == [
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    ]


@given(sender=st.binary(min_size=20, max_size=20), nonce=st.integers(0, 2**64 - 1))
def test_matches_rlp_reference(sender, nonce):
    expected = to_checksum_address(keccak(rlp.encode([sender, nonce]))[12:])
    assert create_address("0x" + sender.hex(), nonce) == expected


@pytest.mark.parametrize("nonce", [-1, 2**64])
def test_nonce_out_of_range_raises(nonce):
    with pytest.raises(ValueError):
        create_address(ANVIL_0, nonce)
