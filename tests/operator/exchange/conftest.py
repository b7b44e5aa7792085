import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from exchange_fixtures import make_desk


@pytest.fixture
def desk():
    return make_desk()
