"""Graders of chapter 08: they accept the library and reject typical mistakes with a readable message."""

import torch

from learnlib import check
from learnlib.check.slat import _layout_variant
from learnlib.slat import diagonal_gaussian_kl, gaussian_params, hammersley_points


def not_implemented(*args, **kwargs):
    raise NotImplementedError("exercise: write your code here, then run the check below")


# --------------------------------------------------------------------------- Gaussian parameters
def written_out_params(raw, coords, resolution, points, voxel_size, atanh=True, order=None):
    """A learner's solution: split the blocks, perturb, bound, place."""
    n, g = raw.shape[0], raw.shape[1] // 14
    order = order or [("xyz", 3), ("features_dc", 3), ("scaling", 3), ("rotation", 4), ("opacity", 1)]
    parts, start = {}, 0
    for name, width in order:
        parts[name] = raw[:, start:start + g * width].reshape(n, g, width)  # (N, G, width)
        start += g * width
    perturb = torch.atanh(points / voxel_size) if atanh else points / voxel_size
    offset = torch.tanh(parts["xyz"] + perturb) * 0.5 * voxel_size / resolution  # (N, G, 3)
    means = (coords.float() + 0.5)[:, None] / resolution + offset - 0.5  # (N, G, 3)
    return {"raw_means": means.reshape(-1, 3), "sh_dc": parts["features_dc"].reshape(-1, 3),
            "raw_scales": parts["scaling"].reshape(-1, 3), "raw_quats": 0.1 * parts["rotation"].reshape(-1, 4),
            "raw_opacities": parts["opacity"].reshape(-1, 1)}


def test_gaussian_params_accepts_library_and_written_out_solution():
    def library(raw, coords, resolution, points, voxel_size):
        return gaussian_params(raw, coords, resolution, torch.atanh(points / voxel_size), voxel_size)

    assert check.gaussian_params(library)
    assert check.gaussian_params(written_out_params)


def test_gaussian_params_variant_machinery_matches_library():
    raw, coords = torch.randn(6, 14 * 8), torch.randint(0, 16, (6, 3))
    points = hammersley_points(8).float() * 2 - 1
    ours = _layout_variant(raw, coords, 16, points, 1.5)
    lib = gaussian_params(raw, coords, 16, torch.atanh(points / 1.5), 1.5)
    for key in lib:
        torch.testing.assert_close(ours[key], lib[key])


def test_gaussian_params_names_missing_atanh_and_wrong_order():
    result = check.gaussian_params(lambda *a: written_out_params(*a, atanh=False))
    assert not result and "without atanh" in result.message
    swapped = [("xyz", 3), ("scaling", 3), ("rotation", 4), ("opacity", 1), ("features_dc", 3)]
    result = check.gaussian_params(lambda *a: written_out_params(*a, order=swapped))
    assert not result and "wrong order" in result.message


def test_gaussian_params_names_atanh_of_undivided_points():
    def no_division(raw, coords, resolution, points, voxel_size):
        return written_out_params(raw, coords, resolution, points * voxel_size, voxel_size)

    result = check.gaussian_params(no_division)
    assert not result and "not divided by voxel_size before atanh" in result.message


def test_gaussian_params_stub_is_not_implemented():
    result = check.gaussian_params(not_implemented)
    assert not result and "not implemented yet" in result.message


# --------------------------------------------------------------------------- KL divergence
def test_kl_accepts_library_and_written_out_solution():
    assert check.diagonal_gaussian_kl(diagonal_gaussian_kl)
    assert check.diagonal_gaussian_kl(lambda m, lv: 0.5 * (m * m + lv.exp() - lv - 1).mean())


def test_kl_names_summing_missing_half_and_sign():
    result = check.diagonal_gaussian_kl(lambda m, lv: 0.5 * (m * m + lv.exp() - lv - 1).sum())
    assert not result and "summed over every element" in result.message
    result = check.diagonal_gaussian_kl(lambda m, lv: 0.5 * (m * m + lv.exp() - lv - 1).sum(-1).mean())
    assert not result and "summed over the channels" in result.message
    result = check.diagonal_gaussian_kl(lambda m, lv: (m * m + lv.exp() - lv - 1).mean())
    assert not result and "0.5 is missing" in result.message
    result = check.diagonal_gaussian_kl(lambda m, lv: -0.5 * (m * m + lv.exp() - lv - 1).mean())
    assert not result and "sign is flipped" in result.message


def test_kl_rejects_per_element_and_detached_results():
    result = check.diagonal_gaussian_kl(lambda m, lv: 0.5 * (m * m + lv.exp() - lv - 1))
    assert not result and "one number" in result.message
    result = check.diagonal_gaussian_kl(lambda m, lv: diagonal_gaussian_kl(m.detach(), lv.detach()))
    assert not result and "no gradient" in result.message


def test_kl_stub_is_not_implemented():
    result = check.diagonal_gaussian_kl(not_implemented)
    assert not result and "not implemented yet" in result.message


def test_kl_and_gaussian_params_failures_show_their_inputs():
    result = check.diagonal_gaussian_kl(lambda m, lv: 0.5 * (m * m + lv.exp() - lv - 1).sum())
    assert "input mean = [[" in result.message and "input logvar = [[" in result.message
    result = check.diagonal_gaussian_kl(lambda m, lv: (m * m).mean() + 1.0)
    assert "input mean = [[" in result.message and "expected:" in result.message and "received:" in result.message
    result = check.gaussian_params(lambda *a: written_out_params(*a, atanh=False))
    assert "input coords = [[" in result.message and "input voxel_size = 1.5" in result.message
