"""Chapter 06 graders: they accept the library (under any window numbering) and name each typical mistake."""

import torch

from learnlib import check
from learnlib.sparse import morton_encode, window_partition
from learnlib.sparse.windows import partition_from_keys


def library_window_ids(coords, window_size, shift):
    return window_partition(coords, window_size, shift).window_ids


def library_group_windows(window_ids):
    part = partition_from_keys(window_ids)
    return part.fwd, part.bwd, part.seqlens


def test_window_ids_accepts_library_and_any_numbering():
    assert check.window_ids(library_window_ids)

    def relabelled(coords, window_size, shift):
        # same windows, numbered in order of first appearance and counted backwards
        _, first = torch.unique(library_window_ids(coords, window_size, shift), return_inverse=True)
        return 1000 - first

    assert check.window_ids(relabelled)


def test_window_ids_rejects_forgotten_shift():
    result = check.window_ids(lambda coords, ws, shift: library_window_ids(coords, ws, 0))
    assert not result and "shift 0" in result.message and "add the shift" in result.message


def test_window_ids_rejects_windows_spanning_batches():
    def batch_ignored(coords, ws, shift):
        flat = coords.clone()
        flat[:, 0] = 0
        return library_window_ids(flat, ws, shift)

    result = check.window_ids(batch_ignored)
    assert not result and "different batches" in result.message and "fold the batch id" in result.message


def test_window_ids_rejects_wrong_shape_and_float():
    result = check.window_ids(lambda coords, ws, shift: library_window_ids(coords, ws, shift)[:, None])
    assert not result and "expected shape" in result.message
    result = check.window_ids(lambda coords, ws, shift: library_window_ids(coords, ws, shift).float())
    assert not result and "integer" in result.message


def test_window_ids_stub_reports_not_implemented():
    def stub(coords, ws, shift):
        raise NotImplementedError("exercise")

    result = check.window_ids(stub)
    assert not result and "not implemented yet" in result.message


def test_group_windows_accepts_library_and_any_window_order():
    assert check.group_windows(library_group_windows)

    def reversed_windows(window_ids):
        # windows in descending id order: a different but valid grouping
        return library_group_windows(-window_ids)

    assert check.group_windows(reversed_windows)


def test_group_windows_rejects_uninverted_bwd():
    def bwd_is_fwd(window_ids):
        fwd, _, seqlens = library_group_windows(window_ids)
        return fwd, fwd, seqlens

    result = check.group_windows(bwd_is_fwd)
    assert not result and "bwd is not the inverse of fwd" in result.message


def test_group_windows_rejects_empty_windows_in_seqlens():
    def bincount_seqlens(window_ids):
        fwd, bwd, _ = library_group_windows(window_ids)
        return fwd, bwd, torch.bincount(window_ids)

    result = check.group_windows(bincount_seqlens)
    assert not result and "seqlens" in result.message and "empty windows" in result.message


def test_group_windows_rejects_unsorted_order():
    def unsorted(window_ids):
        _, _, seqlens = library_group_windows(window_ids)
        n = window_ids.shape[0]
        return torch.arange(n), torch.arange(n), seqlens

    result = check.group_windows(unsorted)
    assert not result and "different windows" in result.message


def test_morton_encode_accepts_library_and_rejects_reversed_axes():
    assert check.morton_encode(morton_encode)
    result = check.morton_encode(lambda xyz: morton_encode(xyz.flip(1)))
    assert not result and "x must be the most significant" in result.message


def test_morton_encode_rejects_missing_interleave():
    def concatenated_bits(xyz):
        return (xyz[:, 0] << 20) | (xyz[:, 1] << 10) | xyz[:, 2]

    result = check.morton_encode(concatenated_bits)
    assert not result and "codes differ" in result.message
