import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from api_fixtures import Exchange


@pytest.fixture
def ex(tmp_path):
    return Exchange(tmp_path)


@pytest.fixture
def client(ex):
    with ex.client() as c:
        yield c
