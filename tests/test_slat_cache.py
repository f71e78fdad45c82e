"""SLat cache: computed once per name + settings, read back identically, never clobbered by a failed run."""

import numpy as np
import pytest
import torch

from learnlib.slat.data import cache as slat_cache
from learnlib.slat.data.cache import SLatCache, settings_key
from learnlib.slat.data.features import SLatObject, slat_cameras


def make_object(name="thing", seed=0):
    g = torch.Generator().manual_seed(seed)
    cameras = slat_cameras(3, 16)
    return SLatObject(name, 16, torch.randint(0, 16, (40, 3), generator=g), torch.randn(40, 6, generator=g),
                      torch.rand(3, 3, 16, 16, generator=g), torch.rand(3, 1, 16, 16, generator=g), cameras)


def test_load_or_create_builds_once_and_round_trips(tmp_path):
    cache = SLatCache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return make_object()

    settings = {"resolution": 16, "num_views": 3}
    first = cache.load_or_create("thing", settings, build)
    second = cache.load_or_create("thing", settings, build)
    assert len(calls) == 1
    original = make_object()
    assert torch.equal(first.coords, original.coords) and torch.equal(second.coords, original.coords)
    torch.testing.assert_close(first.feats, original.feats, atol=5e-3, rtol=1e-3)  # stored as float16
    torch.testing.assert_close(first.images, original.images, atol=0.5 / 255 + 1e-6, rtol=0)  # stored as uint8
    torch.testing.assert_close(first.cameras.viewmats, original.cameras.viewmats)
    assert torch.equal(first.images, second.images)
    assert cache.num_voxels("thing", settings) == 40
    cache.load_or_create("thing", {**settings, "resolution": 32}, build)  # other settings: another file
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2


def test_settings_key_is_file_safe_and_depends_on_every_setting():
    assert settings_key("pyvista/cow", {"a": 1}).startswith("pyvista_cow-")
    assert settings_key("x", {"a": 1}) != settings_key("x", {"a": 2})
    assert settings_key("x", {"a": 1, "b": 2}) == settings_key("x", {"b": 2, "a": 1})


def test_failed_build_or_write_keeps_the_cached_file(tmp_path, monkeypatch):
    cache = SLatCache(tmp_path)
    settings = {"resolution": 16}
    cache.load_or_create("thing", settings, make_object)
    path = cache.path("thing", settings)
    before = path.read_bytes()

    def failing_build():
        raise RuntimeError("render crashed")

    with pytest.raises(RuntimeError, match="render crashed"):
        cache.load_or_create("thing", settings, failing_build, overwrite=True)

    def failing_savez(file, **arrays):
        file.write(b"partial")  # half a file, then the disk fills up
        raise OSError("no space left on device")

    monkeypatch.setattr(slat_cache.np, "savez", failing_savez)
    with pytest.raises(OSError, match="no space"):
        cache.save(make_object(seed=1), settings)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    monkeypatch.undo()
    assert np.load(path)["coords"].shape == (40, 3)


def test_missing_object_and_cache_dir_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not cached"):
        SLatCache(tmp_path).load("absent", {})
    with pytest.raises(ValueError, match="cache directory"):
        SLatCache(None)


def test_cache_files_get_the_users_normal_permissions(tmp_path):
    """Written like checkpoints (temporary file + rename), with 0o666 less the umask, not mkstemp's 0o600."""
    import os

    old = os.umask(0o022)
    try:
        path = SLatCache(tmp_path).save(make_object(), {"resolution": 16})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob("*.tmp"))
