import pytest

from branding.selectors import brand_forget


@pytest.fixture(autouse=True)
def _fresh_brand():
    brand_forget()
    yield
    brand_forget()
