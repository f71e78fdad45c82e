"""SLat cache under a hostile user: edited meshes, damaged files, unwritable or wrong folders, orphans."""

import errno
import os
import time
from pathlib import Path

import pytest
import torch

from learnlib.slat.data.cache import SLatCache, settings_key
from learnlib.slat.data.features import SLatObject, slat_cameras


def make_object(name="thing", seed=0):
    g = torch.Generator().manual_seed(seed)
    return SLatObject(name, 16, torch.randint(0, 16, (40, 3), generator=g), torch.randn(40, 6, generator=g),
                      torch.rand(3, 3, 16, 16, generator=g), torch.rand(3, 1, 16, 16, generator=g), slat_cameras(3, 16))


def test_key_follows_the_content_of_a_mesh_file(tmp_path):
    mesh = tmp_path / "part.obj"
    mesh.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    before = settings_key(str(mesh), {"resolution": 16})
    assert settings_key(str(mesh), {"resolution": 16}) == before  # stable while the file is unchanged
    mesh.write_text("v 0 0 0\nv 2 0 0\nv 0 2 0\nf 1 2 3\n")  # edited in place
    assert settings_key(str(mesh), {"resolution": 16}) != before
    assert settings_key("bunny", {"a": 1}) == settings_key("bunny", {"a": 1})  # sample meshes: name + settings


def test_edited_mesh_file_is_preprocessed_again(tmp_path):
    from learnlib.slat.data.dataset import MeshSource

    mesh = tmp_path / "tri.obj"
    mesh.write_text("v -1 -1 0\nv 1 -1 0\nv 0 1 0\nf 1 2 3\n")
    source = MeshSource([str(mesh)], tmp_path / "cache", resolution=8, num_views=2, image_size=16)
    first = source.load(0).coords
    mesh.write_text("v -1 -1 -1\nv 1 -1 -1\nv 0 1 1\nv 0 0 1\nf 1 2 3\nf 1 3 4\n")
    second = MeshSource([str(mesh)], tmp_path / "cache", resolution=8, num_views=2, image_size=16).load(0).coords
    assert not (first.shape == second.shape and torch.equal(first, second))
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04truncated"])
def test_damaged_cache_file_is_named_and_rebuilt(tmp_path, content):
    cache = SLatCache(tmp_path)
    settings = {"resolution": 16}
    path = cache.path("thing", settings)
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path.name}.*delete it"):
        cache.load("thing", settings)
    with pytest.raises(ValueError, match=path.name):
        cache.num_voxels("thing", settings)
    with pytest.warns(UserWarning, match=path.name):
        obj = cache.load_or_create("thing", settings, make_object)
    assert obj.coords.shape == (40, 3) and cache.num_voxels("thing", settings) == 40


def test_cache_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "cache"
    path.write_text("")
    with pytest.raises(ValueError, match=f"data.cache_dir {path} is a file"):
        SLatCache(path)


def test_unwritable_cache_dir_fails_before_the_preprocessing(tmp_path, monkeypatch):
    cache = SLatCache(tmp_path)
    built = []

    def read_only(self, data):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(OSError, match=f"cannot write the SLat cache in {tmp_path}.*data.cache_dir"):
        cache.load_or_create("thing", {}, lambda: built.append(1) or make_object())
    assert built == []


def test_orphan_temporary_files_are_removed_when_old(tmp_path):
    old = tmp_path / ".thing-0123.npz.abcd.tmp"
    fresh = tmp_path / ".other-0123.npz.efgh.tmp"
    for path in (old, fresh):
        path.write_bytes(b"half")
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    SLatCache(tmp_path)
    assert not old.exists() and fresh.exists()  # a fresh one may belong to a write still running
