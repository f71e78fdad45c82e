"""Graders of chapters 03 (VQ-VAE) and 04 (multi-scale residual quantization).

Each grader runs the learner's function and the library (learnlib.vq) on fresh seeded
random inputs. Code choices are judged by distance (any code at the minimal distance is
accepted, so a different but exact distance formula passes); values and gradients are
compared with the reference. A wrong answer that matches a typical mistake exactly
(argmax instead of argmin, detach on the wrong term, no residual subtraction...) gets a
message naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from learnlib.check.core import Mismatch, assert_close, describe, run_check, seeded
from learnlib.vq.multiscale import MultiScaleResidualQuantizer, embed_and_upsample, multiscale_decode
from learnlib.vq.quantizer import nearest_code as reference_nearest_code
from learnlib.vq.quantizer import straight_through as reference_straight_through
from learnlib.vq.vqvae import VAR_PATCH_NUMS


def _codebook(generator: torch.Generator, vocab: int, dim: int) -> Tensor:
    """Random codes with clearly different norms (so that a dot-product 'distance' picks wrong codes)."""
    scale = 0.2 + 2.0 * torch.rand(vocab, 1, generator=generator)  # (V, 1)
    return torch.randn(vocab, dim, generator=generator) * scale


def _squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """Exact squared distances (N, V) in float64 between the rows of z (N, C) and the codes."""
    diff = z.double()[:, None, :] - codebook.double()[None, :, :]  # (N, V, C)
    return diff.square().sum(-1)


def _as_indices(name: str, got, shape: tuple[int, ...], vocab: int) -> Tensor:
    if not isinstance(got, Tensor):
        raise Mismatch(f"{name}: expected a tensor of integer code indices of shape {shape}, got {describe(got)}")
    if tuple(got.shape) != shape:
        raise Mismatch(f"{name}: expected shape {shape}, got shape {tuple(got.shape)}")
    if got.is_floating_point() or got.dtype == torch.bool:
        raise Mismatch(f"{name}: expected integer indices (torch.long), got dtype {got.dtype}")
    if got.numel() and (got.min() < 0 or got.max() >= vocab):
        raise Mismatch(f"{name}: indices must lie in [0, {vocab}), got values from {int(got.min())} "
                       f"to {int(got.max())}")
    return got.long()


def _first_not_nearest(z: Tensor, codebook: Tensor, idx: Tensor) -> int | None:
    """Row of z (N, C) whose chosen code idx (N,) is farther than the nearest one, or None."""
    dist = _squared_distances(z, codebook)  # (N, V)
    chosen = dist.gather(1, idx[:, None]).squeeze(1)  # (N,)
    best = dist.min(1).values  # (N,)
    bad = chosen > best + 1e-5 * (1 + best)
    return int(bad.nonzero()[0]) if bad.any() else None


def _not_nearest_message(z: Tensor, codebook: Tensor, idx: Tensor, row: int) -> str:
    dist = _squared_distances(z, codebook)  # (N, V)
    best = int(dist[row].argmin())
    return (f"got code {int(idx[row])} at squared distance {float(dist[row, idx[row]]):.4g}, "
            f"but code {best} is nearer ({float(dist[row, best]):.4g})")


# --------------------------------------------------------------------------- nearest code
def nearest_code(fn) -> bool:
    """Check fn(z (..., C), codebook (V, C)) -> indices (...) of the nearest code in squared L2."""
    generator = seeded(30)

    def case(shape, vocab):
        def run():
            z = torch.randn(*shape, generator=generator) * 1.5
            codebook = _codebook(generator, vocab, shape[-1])
            z_in, codebook_in = z.clone(), codebook.clone()
            got = fn(z_in, codebook_in)
            if not torch.equal(z_in, z) or not torch.equal(codebook_in, codebook):
                raise Mismatch("your function changed its inputs in place; compute distances into new tensors")
            got = _as_indices("indices", got, tuple(shape[:-1]), vocab).reshape(-1)  # (N,)
            flat = z.reshape(-1, shape[-1])  # (N, C)
            row = _first_not_nearest(flat, codebook, got)
            if row is None:
                return
            dist = _squared_distances(flat, codebook)  # (N, V)
            if torch.equal(got, dist.argmax(1)):
                raise Mismatch("you picked the farthest code (argmax of the distance): the nearest code is the "
                               "argmin of ||z - e||^2")
            if torch.equal(got, (flat @ codebook.T).argmax(1)):
                raise Mismatch("you picked the code with the largest dot product z.e: that ignores ||e||^2, and "
                               "these codes have different norms; take the argmin of ||z||^2 + ||e||^2 - 2 z.e")
            raise Mismatch(f"indices: vector {row} " + _not_nearest_message(flat, codebook, got, row))
        return run

    shapes = [((40, 4), 16), ((2, 7, 8), 64), ((3, 5, 5, 3), 10), ((1, 32), 128)]
    return run_check("nearest_code", [case(s, v) for s, v in shapes],
                     hint="distances ||z||^2 + ||e||^2 - 2 z @ codebook.T for all pairs (z flattened to (N, C)), "
                          "then argmin over the codes and reshape to z.shape[:-1].")


# --------------------------------------------------------------------------- straight-through
def straight_through(fn) -> bool:
    """Check fn(z, zq) -> a tensor whose value is zq and whose gradient reaches z unchanged (not zq)."""
    generator = seeded(31)

    def case(shape):
        def run():
            z = torch.randn(*shape, generator=generator).requires_grad_(True)
            zq = torch.randn(*shape, generator=generator).requires_grad_(True)
            expected = reference_straight_through(z, zq)
            got = fn(z, zq)
            if not isinstance(got, Tensor):
                raise Mismatch(f"expected a {describe(expected)}, got {describe(got)}")
            if got.shape != expected.shape:
                raise Mismatch(f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}")
            if not torch.allclose(got.detach(), zq.detach(), atol=1e-5) and torch.allclose(got.detach(), z.detach()):
                raise Mismatch("the forward value is z: it must be zq (the decoder sees the quantized vectors)")
            assert_close("forward value", got.detach(), expected.detach())
            if not got.requires_grad:
                raise Mismatch("your output carries no gradient: the encoder (z) would never learn")
            cotangent = torch.randn(*shape, generator=generator)
            grad_z, grad_zq = torch.autograd.grad(got, [z, zq], cotangent, allow_unused=True)
            if grad_z is None or not grad_z.abs().gt(1e-8).any():
                raise Mismatch("gradient of z: none reaches z (it is missing or zero); z + (zq - z).detach() "
                               "has the value zq and passes the gradient to z unchanged")
            if torch.allclose(grad_z, -cotangent, atol=1e-5):
                raise Mismatch("gradient of z: it is the negative of the incoming gradient; detach the whole "
                               "difference (zq - z), not z alone")
            assert_close("gradient of z", grad_z, cotangent)
            if grad_zq is not None and grad_zq.abs().gt(1e-8).any():
                raise Mismatch("zq received a gradient through the straight-through path: detach the whole "
                               "difference (zq - z); the codebook learns from the codebook loss instead")
        return run

    return run_check("straight_through", [case(s) for s in [(4, 8), (2, 3, 5, 5), (1, 16)]],
                     hint="return z + (zq - z).detach(): forward value zq, gradient copied to z.")


# --------------------------------------------------------------------------- multi-scale residual encoding
def _identity_phi(si: int, h: Tensor) -> Tensor:
    return h


def _variant_indices(f: Tensor, codebook: Tensor, patch_nums: Sequence[int], phi, *, subtract: str = "phi",
                     down: str = "area", up: str = "bicubic") -> list[Tensor]:
    """Token maps of a common wrong version of the encoding (what is subtracted, which resampling)."""
    size = f.shape[-1]
    f_rest, out = f.detach().clone(), []
    with torch.no_grad():
        for si, pn in enumerate(patch_nums):
            z = f_rest if pn == size else F.interpolate(f_rest, size=(pn, pn), mode=down)  # (B, C, pn, pn)
            idx = reference_nearest_code(rearrange(z, "b c h w -> b (h w) c"), codebook)  # (B, pn*pn)
            h = F.embedding(idx, codebook)  # (B, pn*pn, C)
            h = rearrange(h, "b (h w) c -> b c h w", h=pn, w=pn)  # (B, C, pn, pn)
            if pn != size:
                h = F.interpolate(h, size=(size, size), mode=up)  # (B, C, H, W)
            if subtract == "phi":
                f_rest = f_rest - phi(si, h)
            elif subtract == "raw":
                f_rest = f_rest - h
            out.append(idx)
    return out


_AREA = "downsample the residual with F.interpolate(..., mode='area') (an average over each cell)"
_ENCODE_MISTAKES = [
    ({"subtract": "none"}, ("every scale quantized f itself: subtract each scale's contribution phi(h) "
                            "from the residual before the next scale")),
    ({"subtract": "raw"}, ("you subtracted the upsampled embedding before phi: subtract phi(h), the same "
                           "term you add to f_hat")),
    ({"down": "bilinear"}, f"{_AREA}, not bilinear"),
    ({"down": "nearest"}, f"{_AREA}, not nearest"),
    ({"down": "bicubic"}, f"{_AREA}, not bicubic"),
    ({"up": "bilinear"}, "upsample each embedding with mode='bicubic', not bilinear"),
    ({"up": "nearest"}, "upsample each embedding with mode='bicubic', not nearest"),
]


def _check_scale_indices(got: list[Tensor], f: Tensor, codebook: Tensor, patch_nums: Sequence[int], phi) -> None:
    """Each scale's tokens must be nearest codes of the true residual left by the learner's earlier tokens."""
    size = f.shape[-1]
    with torch.no_grad():
        f_rest = f.clone()
        for si, pn in enumerate(patch_nums):
            z = f_rest if pn == size else F.interpolate(f_rest, size=(pn, pn), mode="area")  # (B, C, pn, pn)
            flat = rearrange(z, "b c h w -> (b h w) c")  # (B*pn*pn, C)
            row = _first_not_nearest(flat, codebook, got[si].reshape(-1))
            if row is not None:
                for options, message in _ENCODE_MISTAKES:
                    variant = _variant_indices(f, codebook, patch_nums, phi, **options)
                    if all(torch.equal(g, v) for g, v in zip(got, variant)):
                        raise Mismatch(f"indices[{si}] (scale {pn}x{pn}): {message}")
                b, p = divmod(row, pn * pn)
                raise Mismatch(f"indices[{si}] (scale {pn}x{pn}), image {b}, token {p}: "
                               + _not_nearest_message(flat, codebook, got[si].reshape(-1), row)
                               + " to the area-downsampled residual")
            f_rest = f_rest - phi(si, embed_and_upsample(got[si], codebook, pn, size))


def residual_multiscale_encode(fn) -> bool:
    """Check fn(f (B, C, H, W), codebook (V, C), patch_nums, phi) -> (per-scale indices [(B, pn*pn)], f_hat)."""
    generator = seeded(32)

    def case(batch, dim, vocab, patch_nums, with_phi):
        def run():
            size = patch_nums[-1]
            f = torch.randn(batch, dim, size, size, generator=generator)
            codebook = _codebook(generator, vocab, dim)
            if with_phi:
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=generator)))
                phi = MultiScaleResidualQuantizer(vocab, dim, patch_nums).phi
            else:
                phi = _identity_phi
            f_in, codebook_in = f.clone(), codebook.clone().requires_grad_(True)
            got = fn(f_in, codebook_in, patch_nums, phi)
            if not torch.equal(f_in, f):
                raise Mismatch("your function changed f in place: start from a copy (f_rest = f.clone())")
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise Mismatch(f"expected a pair (indices, f_hat), got {describe(got)}")
            indices, f_hat = got
            if not isinstance(indices, (tuple, list)) or len(indices) != len(patch_nums):
                raise Mismatch(f"indices: expected a list of {len(patch_nums)} token maps (one per scale), "
                               f"got {describe(indices)}")
            indices = [_as_indices(f"indices[{si}]", idx, (batch, pn * pn), vocab)
                       for si, (idx, pn) in enumerate(zip(indices, patch_nums))]
            _check_scale_indices(indices, f, codebook, patch_nums, phi)
            reference_codebook = codebook.clone().requires_grad_(True)
            expected = multiscale_decode(indices, reference_codebook, patch_nums, phi)  # (B, C, H, W)
            if isinstance(f_hat, Tensor) and f_hat.shape == expected.shape:
                with torch.no_grad():
                    last = phi(len(patch_nums) - 1, embed_and_upsample(indices[-1], codebook, size, size))
                    no_phi = multiscale_decode(indices, codebook, patch_nums, None)
                if not torch.allclose(f_hat.detach(), expected.detach(), atol=1e-4):
                    if torch.allclose(f_hat.detach(), last, atol=1e-4):
                        raise Mismatch("f_hat is the last scale's contribution only: it must be the sum over "
                                       "all scales")
                    if torch.allclose(f_hat.detach(), no_phi, atol=1e-4):
                        raise Mismatch("f_hat is the sum of the upsampled embeddings without phi: add phi(si, h)")
            assert_close("f_hat", f_hat, expected.detach(), atol=1e-4, rtol=1e-3)
            if not f_hat.requires_grad:
                raise Mismatch("f_hat carries no gradient to the codebook: build it from codebook rows "
                               "(F.embedding(idx, codebook)) outside torch.no_grad(), without .detach()")
            cotangent = torch.randn(expected.shape, generator=generator)
            (got_grad,) = torch.autograd.grad(f_hat, [codebook_in], cotangent, allow_unused=True)
            (expected_grad,) = torch.autograd.grad(expected, [reference_codebook], cotangent)
            if got_grad is None:
                raise Mismatch("gradient of codebook: f_hat does not depend on the codebook")
            assert_close("gradient of codebook", got_grad, expected_grad, atol=1e-4, rtol=1e-3)
        return run

    cases = [(2, 4, 16, (1, 2, 3, 4), False), (2, 8, 32, (1, 2, 3, 4), True),
             (3, 4, 24, (1, 2, 4, 8), False), (1, 8, 64, VAR_PATCH_NUMS, True)]
    return run_check("residual_multiscale_encode", [case(*c) for c in cases],
                     hint="f_rest = f.clone(); per scale: area-downsample f_rest to pn x pn, nearest codes, "
                          "embed, bicubic-upsample to H x W (unless pn == H), h = phi(si, h), "
                          "f_hat += h, f_rest -= h.")

