import pytest

from tests.sweep.tiny_sweeps import build


@pytest.fixture(scope="session")
def tiny_sweeps(tmp_path_factory):
    return build(tmp_path_factory.getbasetemp() / "tiny_sweeps")
