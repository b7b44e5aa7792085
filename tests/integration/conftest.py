"""Integration fixtures: a fresh isoperp deployment on the anvil that ape-foundry started."""

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ape import networks

from isoperp.chain.client import ChainClient, Web3Deployer, connect
from isoperp.chain.contracts import System
from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.devnet import devnet_account
from isoperp.service.inbox import Inbox

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def rpc_url():
    return networks.provider.uri


@dataclass
class Collector:
    """A Narrator that records what the story said."""

    steps: list
    oks: list

    def step(self, title):
        self.steps.append(title)

    def info(self, text):
        pass

    def ok(self, text):
        self.oks.append(text)


@pytest.fixture
def narrator():
    return Collector([], [])


def deploy_on(rpc_url):
    client = ChainClient(connect(rpc_url), devnet_account(0))
    deployment = deploy_system(Web3Deployer(client), DeployParams(), rpc_url=rpc_url)
    return System(client, deployment)


@pytest.fixture
def system(rpc_url):
    return deploy_on(rpc_url)


@pytest.fixture
def own_system(net):
    """A deployment on a devnet of the test's own (tests that reorganise the chain: the session's
    anvil is shared with ape's snapshot/revert isolation)."""
    return deploy_on(net.url)


@pytest.fixture
def inbox(tmp_path):
    box = Inbox(tmp_path / "inbox.sqlite")
    yield box
    box.close()


@pytest.fixture
def run(tmp_path, rpc_url):
    """Invokes the `isoperp` CLI in-process against a fresh deployment on the session's anvil;
    ``ok=True`` asserts exit code 0. ``run.deployment`` is the deployment file."""
    from click.testing import CliRunner

    from isoperp.cli.main import cli

    deployment = tmp_path / "deployment.json"

    def invoke(*args, ok=True):
        result = CliRunner().invoke(cli, ["--deployment", str(deployment), *args])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke("deploy", "--rpc", rpc_url)
    invoke.deployment = deployment
    return invoke


@pytest.fixture
def net(tmp_path):
    """A devnet of the test's own (for tests that stop mining, kill processes or cut the RPC)."""
    from chain_fixtures import free_port

    from isoperp.devnet import Devnet

    devnet = Devnet(port=free_port(), state_dir=tmp_path / "anvil")
    devnet.up()
    yield devnet
    devnet.down()
