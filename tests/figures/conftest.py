import pytest


@pytest.fixture
def world_people() -> str:
    return "figures"
