import pytest

from tests.sweep.tiny_sweeps import shared


@pytest.fixture(scope="session")
def tiny_sweeps(tmp_path_factory):
    return shared(tmp_path_factory)
