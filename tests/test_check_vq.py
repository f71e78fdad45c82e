"""Chapter 03-04 graders: they accept the library's answers and name each typical mistake."""

import re

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from learnlib import check
from learnlib.vq import embed_and_upsample, nearest_code, residual_multiscale_encode, straight_through


def stub(*args, **kwargs):
    raise NotImplementedError("exercise")


@pytest.mark.parametrize("grader", [check.nearest_code, check.straight_through, check.residual_multiscale_encode])
def test_stub_reports_not_implemented(grader, capsys):
    result = grader(stub)
    assert not result and "not implemented yet" in result.message and "Hint:" in result.message
    assert capsys.readouterr().out.strip() == result.message


# --------------------------------------------------------------------------- nearest code
def test_nearest_code_accepts_library_and_cdist():
    assert check.nearest_code(nearest_code)
    assert check.nearest_code(lambda z, e: torch.cdist(z.reshape(-1, z.shape[-1]), e).argmin(1)
                              .reshape(z.shape[:-1]))


def test_nearest_code_rejects_argmax():
    def farthest(z, codebook):
        flat = z.reshape(-1, z.shape[-1])
        dist = flat.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2 * flat @ codebook.T
        return dist.argmax(1).reshape(z.shape[:-1])

    result = check.nearest_code(farthest)
    assert not result and "argmax" in result.message and "farthest" in result.message


def test_nearest_code_rejects_dot_product():
    result = check.nearest_code(lambda z, e: (z @ e.T).argmax(-1))
    assert not result and "dot product" in result.message and "||e||^2" in result.message


def test_nearest_code_rejects_flat_output_and_floats():
    result = check.nearest_code(lambda z, e: nearest_code(z, e).reshape(-1))
    assert not result and "expected shape (2, 7)" in result.message
    result = check.nearest_code(lambda z, e: nearest_code(z, e).float())
    assert not result and "integer indices" in result.message


# --------------------------------------------------------------------------- straight-through
def test_straight_through_accepts_library():
    assert check.straight_through(straight_through)


def test_straight_through_rejects_detach_on_the_wrong_term():
    result = check.straight_through(lambda z, zq: z.detach() + (zq - z))
    assert not result and "negative" in result.message and "(zq - z)" in result.message


def test_straight_through_rejects_plain_quantized_value():
    result = check.straight_through(lambda z, zq: zq.detach())
    assert not result and "no gradient" in result.message
    result = check.straight_through(lambda z, zq: z + (zq - z))  # the gradients of z cancel
    assert not result and "gradient of z" in result.message and "zero" in result.message


def test_straight_through_rejects_swapped_roles_and_gradient_to_codebook():
    result = check.straight_through(lambda z, zq: zq + (z - zq).detach())
    assert not result and "forward value is z" in result.message
    result = check.straight_through(lambda z, zq: zq + z - z.detach())
    assert not result and "zq received a gradient" in result.message


# --------------------------------------------------------------------------- multi-scale residual encoding
def _encode(f, codebook, patch_nums, phi, subtract=True, down="area", detach_codebook=False, in_place=False):
    """A configurable version of the encoding, to produce each typical mistake."""
    size = f.shape[-1]
    f_rest = f if in_place else f.clone()
    f_hat = torch.zeros_like(f)
    indices = []
    for si, pn in enumerate(patch_nums):
        z = f_rest if pn == size else F.interpolate(f_rest, size=(pn, pn), mode=down)
        idx = nearest_code(rearrange(z, "b c h w -> b (h w) c"), codebook.detach())
        h = phi(si, embed_and_upsample(idx, codebook.detach() if detach_codebook else codebook, pn, size))
        f_hat = f_hat + h
        if subtract:
            f_rest -= h.detach()
        indices.append(idx)
    return indices, f_hat


def test_multiscale_accepts_library_and_a_loop_written_out():
    assert check.residual_multiscale_encode(residual_multiscale_encode)
    assert check.residual_multiscale_encode(_encode)


def test_multiscale_rejects_missing_residual_subtraction():
    result = check.residual_multiscale_encode(lambda *a: _encode(*a, subtract=False))
    assert not result and "indices[1]" in result.message and "subtract" in result.message
    assert "quantized f itself" in result.message


def test_multiscale_rejects_wrong_downsampling():
    result = check.residual_multiscale_encode(lambda *a: _encode(*a, down="nearest"))
    assert not result and "mode='area'" in result.message and "not nearest" in result.message


def test_multiscale_rejects_detached_codebook_and_in_place_change():
    result = check.residual_multiscale_encode(lambda *a: _encode(*a, detach_codebook=True))
    assert not result and "no gradient to the codebook" in result.message
    result = check.residual_multiscale_encode(lambda *a: _encode(*a, in_place=True))
    assert not result and "in place" in result.message


def test_multiscale_rejects_last_scale_only_f_hat():
    def last_only(f, codebook, patch_nums, phi):
        indices, _ = residual_multiscale_encode(f, codebook, patch_nums, phi)
        size = patch_nums[-1]
        return indices, phi(len(patch_nums) - 1, embed_and_upsample(indices[-1], codebook, size, size))

    result = check.residual_multiscale_encode(last_only)
    assert not result and "sum over all scales" in result.message


# --------------------------------------------------------------------------- more named mistakes
def _by_distance(z, codebook, distance):
    flat = z.reshape(-1, z.shape[-1])  # (N, C)
    return distance(flat, codebook).argmin(1).reshape(z.shape[:-1])


def test_nearest_code_names_the_wrong_expansion():
    result = check.nearest_code(lambda z, e: _by_distance(z, e, lambda f, e: e.square().sum(1) + 2 * f @ e.T))
    assert not result and "wrong sign" in result.message
    result = check.nearest_code(lambda z, e: _by_distance(z, e, lambda f, e: e.square().sum(1) - f @ e.T))
    assert not result and "factor 2" in result.message
    result = check.nearest_code(lambda z, e: _by_distance(z, e, lambda f, e: torch.cdist(f, e, p=1)))
    assert not result and "L1 distance" in result.message


def test_nearest_code_names_argmin_over_the_vectors():
    def wrong_dim(z, codebook):
        flat = z.reshape(-1, z.shape[-1])  # (N, C)
        return (flat.square().sum(1, keepdim=True) + codebook.square().sum(1) - 2 * flat @ codebook.T).argmin(0)

    result = check.nearest_code(wrong_dim)
    assert not result and "argmin ran over the vectors" in result.message


def test_nearest_code_mismatch_shows_the_smallest_input():
    result = check.nearest_code(lambda z, e: (z @ e.T).argmax(-1))
    assert not result and re.search(r"\(case [12]\)", result.message)  # one of the two small cases
    assert "input z = [[" in result.message and "input codebook = [[" in result.message
    assert "expected: [" in result.message and "received: [" in result.message


def test_straight_through_names_the_missing_and_the_misplaced_detach():
    result = check.straight_through(lambda z, zq: z + (zq - z))
    assert not result and "detach is missing" in result.message
    result = check.straight_through(lambda z, zq: z + (zq.detach() - z))
    assert not result and "detached zq alone" in result.message
    result = check.straight_through(lambda z, zq: zq)
    assert not result and "the output is zq itself" in result.message
    result = check.straight_through(lambda z, zq: z - (zq - z).detach())
    assert not result and "correction is subtracted" in result.message


def _phi_encode(f, codebook, patch_nums, phi, use_phi=True, phi_first=False, subtract_input=False, up="bicubic"):
    """The encoding with one switch per typical mistake around phi, the residual and the upsampling."""
    size = f.shape[-1]
    f_rest, f_hat, indices = f.clone(), torch.zeros_like(f), []
    for si, pn in enumerate(patch_nums):
        z = f_rest if pn == size else F.interpolate(f_rest, size=(pn, pn), mode="area")  # (B, C, pn, pn)
        idx = nearest_code(rearrange(z, "b c h w -> b (h w) c"), codebook.detach())  # (B, pn*pn)
        h = rearrange(F.embedding(idx, codebook), "b (h w) c -> b c h w", h=pn, w=pn)  # (B, C, pn, pn)
        if phi_first:
            h = phi(si, h)
        if pn != size:
            h = F.interpolate(h, size=(size, size), mode=up)  # (B, C, H, W)
            z = F.interpolate(z, size=(size, size), mode=up)  # (B, C, H, W)
        if use_phi and not phi_first:
            h = phi(si, h)
        f_hat = f_hat + h
        f_rest = f_rest - (z if subtract_input else h.detach())
        indices.append(idx)
    return indices, f_hat


def test_multiscale_helper_is_the_reference_without_switches():
    assert check.residual_multiscale_encode(_phi_encode)


def test_multiscale_names_phi_missing_and_phi_before_upsampling():
    result = check.residual_multiscale_encode(lambda *a: _phi_encode(*a, use_phi=False))
    assert not result and "phi is missing" in result.message
    result = check.residual_multiscale_encode(lambda *a: _phi_encode(*a, phi_first=True))
    assert not result and "phi was applied before upsampling" in result.message


def test_multiscale_names_subtracting_the_residual_and_the_wrong_upsampling():
    result = check.residual_multiscale_encode(lambda *a: _phi_encode(*a, subtract_input=True))
    assert not result and "subtracted the (resampled) residual itself" in result.message
    result = check.residual_multiscale_encode(lambda *a: _phi_encode(*a, up="bilinear"))
    assert not result and "mode='bicubic', not bilinear" in result.message
