import sys
from pathlib import Path

import pytest

# Test modules import the shared helper module beside this file (call_reverts).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def merkle(project, deployer):
    return deployer.deploy(project.MerkleProofHarness)


@pytest.fixture(scope="module")
def leaves_harness(project, deployer):
    return deployer.deploy(project.LeafHarness)


@pytest.fixture(scope="module")
def batch_harness(project, deployer):
    return deployer.deploy(project.BatchHarness)
