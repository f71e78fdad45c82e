"""Shared pytest fixtures and the GPU skip rule."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture
def gsplat_on_cpu(monkeypatch):
    """gsplat's own `rasterization` runs on CPU: its CUDA calls go to torch stand-ins (tests/gsplat_cpu.py)."""
    import gsplat_cpu

    gsplat_cpu.install(monkeypatch)
    yield


@pytest.fixture
def flash_attn_on_cpu(monkeypatch):
    """`import flash_attn` gives the contract-checking stand-in (tests/flash_attn_stand_in.py); flash runs on CPU."""
    import flash_attn_stand_in

    import learnlib.nn.backends as backends

    flash_attn_stand_in.install(monkeypatch)
    yield flash_attn_stand_in.calls
    backends.flash_attn_available.cache_clear()
