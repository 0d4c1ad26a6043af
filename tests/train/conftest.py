"""Training tests compile the same few step graphs many times; one cache
directory for the whole session lets numba's disk cache serve the repeats."""
import pytest


@pytest.fixture(scope="session")
def _train_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("train_cache")


@pytest.fixture(autouse=True)
def _cache_dir(_train_cache, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(_train_cache))
