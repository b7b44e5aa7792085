import pytest


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
