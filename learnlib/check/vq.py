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

from learnlib.check.core import Mismatch, assert_close, describe, failure, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.check.mistakes import compare
from learnlib.vq.multiscale import MultiScaleResidualQuantizer, embed_and_upsample, multiscale_decode
from learnlib.vq.quantizer import nearest_code as reference_nearest_code
from learnlib.vq.quantizer import straight_through as reference_straight_through
from learnlib.vq.vqvae import VAR_PATCH_NUMS

HINTS = {
    "nearest_code": (
        ("expand ||z - e||^2 = ||z||^2 + ||e||^2 - 2 z.e: all pairs at once are two norms and one matrix "
        "product; flatten z to (N, C) first."),
        ("flat = z.reshape(-1, C); dist = flat.square().sum(1, keepdim=True) + codebook.square().sum(1) "
        "- 2 * flat @ codebook.T  (N, V); return dist.argmin(1).reshape(z.shape[:-1]).")),
    "straight_through": (
        ("the output must have the value of zq but the gradient of z: add to z a correction whose value is "
        "zq - z and which autograd does not see."),
        "return z + (zq - z).detach()"),
    "residual_multiscale_encode": (
        ("keep a residual f_rest = f.clone(); at each scale quantize the area-downsampled residual, bring "
        "the embedded codes back to full size, pass them through phi, add them to f_hat and remove them "
        "from the residual."),
        ("per scale si, pn: z = F.interpolate(f_rest, (pn, pn), mode='area') (unless pn == H); idx = "
        "nearest_code(z as (B, pn*pn, C), codebook.detach()); h = F.embedding(idx, codebook) as (B, C, pn, pn), "
        "F.interpolate(h, (H, W), mode='bicubic') (unless pn == H); h = phi(si, h); f_hat = f_hat + h; "
        "f_rest = f_rest - h.detach(); return the list of idx and f_hat.")),
}
register_hints(HINTS)


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
            if isinstance(got, Tensor) and tuple(got.shape) == (vocab,) and vocab != z[..., 0].numel():
                raise Mismatch(f"indices: got {vocab} values, one per code: the argmin ran over the vectors; "
                               "take it over the codes (the last dimension of the (N, V) distances)")
            got = _as_indices("indices", got, tuple(shape[:-1]), vocab).reshape(-1)  # (N,)
            flat = z.reshape(-1, shape[-1])  # (N, C)
            row = _first_not_nearest(flat, codebook, got)
            if row is None:
                return
            found = _nearest_code_mistakes(flat, codebook, got)
            if found:
                raise _nearest_failure(" OR ".join(found), z, codebook, got, shape)
            raise _nearest_failure(f"indices: vector {row} " + _not_nearest_message(flat, codebook, got, row),
                                   z, codebook, got, shape)
        return run

    # smallest first, so that a mismatch is shown on the smallest input that reveals it
    shapes = [((3, 2), 4), ((6, 3), 8), ((1, 32), 128), ((40, 4), 16), ((2, 7, 8), 64), ((3, 5, 5, 3), 10)]
    return run_check("nearest_code", [case(s, v) for s, v in shapes])


def _nearest_code_mistakes(flat: Tensor, codebook: Tensor, got: Tensor) -> list[str]:
    """Messages of the typical wrong distances whose choice of codes equals `got` (N,) on these inputs."""
    dist = _squared_distances(flat, codebook)  # (N, V)
    z, e = flat.double(), codebook.double()
    dot = z @ e.T  # (N, V)
    e2 = e.square().sum(1)  # (V,)
    cosine = dot / (z.norm(dim=1, keepdim=True) * e.norm(dim=1)).clamp_min(1e-12)
    variants = [
        ("you picked the farthest code (argmax of the distance): the nearest code is the argmin of ||z - e||^2",
         dist.argmax(1)),
        (("you picked the code with the largest dot product z.e: that ignores ||e||^2, and these codes have "
         "different norms; take the argmin of ||z||^2 + ||e||^2 - 2 z.e"), dot.argmax(1)),
        (("the cross term has the wrong sign: ||z - e||^2 = ||z||^2 + ||e||^2 - 2 z.e (you added 2 z.e, which "
         "finds the code nearest to -z)"), (e2 + 2 * dot).argmin(1)),
        ("the cross term lost its factor 2: ||z - e||^2 = ||z||^2 + ||e||^2 - 2 z.e", (e2 - dot).argmin(1)),
        ("the ||e||^2 term must be the squared norm: ||z - e||^2 = ||z||^2 + ||e||^2 - 2 z.e (you used ||e||)",
         (e.norm(dim=1) - 2 * dot).argmin(1)),
        (("you compared directions (largest cosine similarity); the nearest code in squared L2 also depends on "
         "the lengths"), cosine.argmax(1)),
        ("you used the L1 distance sum |z - e|; the codebook lookup uses the squared L2 distance",
         torch.cdist(z, e, p=1).argmin(1)),
    ]
    best = dist.min(1).values
    return [message for message, variant in variants
            if torch.equal(got, variant) and (dist.gather(1, variant[:, None]).squeeze(1) > best + 1e-5 * (1 + best)).any()]


def _nearest_failure(message: str, z: Tensor, codebook: Tensor, got: Tensor, shape) -> Mismatch:
    expected = reference_nearest_code(z, codebook)
    return failure(message, {"z": z, "codebook": codebook}, expected, got.reshape(shape[:-1]))


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
            values = {"z": z.detach(), "zq": zq.detach()}
            compare("forward value", got.detach(), expected.detach(), {
                "the forward value is z: it must be zq (the decoder sees the quantized vectors)": z.detach(),
                "the correction is subtracted: the value must be z + (zq - z) = zq, you computed 2 z - zq":
                    (2 * z - zq).detach(),
                "the forward value is zq - z, the correction alone: add z back": (zq - z).detach(),
            }, values)
            if not got.requires_grad:
                raise failure("your output carries no gradient: it has zq's value but no path back to z, so the "
                              "encoder would never learn", values)
            cotangent = torch.randn(*shape, generator=generator)
            grad_z, grad_zq = torch.autograd.grad(got, [z, zq], cotangent, allow_unused=True)
            shown = {"z": z, "zq": zq, "incoming gradient": cotangent}
            no_grad_z = grad_z is None or not grad_z.abs().gt(1e-8).any()
            full_to_zq = grad_zq is not None and torch.allclose(grad_zq, cotangent, atol=1e-5)
            if no_grad_z and grad_z is None and full_to_zq:
                raise failure("gradient of z: none reaches z, the output is zq itself; the straight-through "
                              "output has zq's value but carries the gradient to z", shown, cotangent, grad_z)
            if no_grad_z and full_to_zq:
                raise failure("gradient of z: it is zero because the detach is missing: to autograd "
                              "z + (zq - z) is just zq (the two z cancel); detach the correction (zq - z)",
                              shown, cotangent, grad_z)
            if no_grad_z and grad_z is not None and grad_zq is None:
                raise failure("gradient of z: it is zero: you detached zq alone, and the two z still cancel; "
                              "detach the whole difference (zq - z)", shown, cotangent, grad_z)
            if no_grad_z:
                raise failure("gradient of z: none reaches z (it is missing or zero); the output must carry "
                              "the incoming gradient to z unchanged", shown, cotangent, grad_z)
            if torch.allclose(grad_z, -cotangent, atol=1e-5):
                raise failure("gradient of z: it is the negative of the incoming gradient; detach the whole "
                              "difference (zq - z), not z alone", shown, cotangent, grad_z)
            if torch.allclose(grad_z, 2 * cotangent, atol=1e-5):
                raise failure("gradient of z: it is twice the incoming gradient; z must appear once outside "
                              "the detached correction", shown, cotangent, grad_z)
            try:
                assert_close("gradient of z", grad_z, cotangent)
            except Mismatch as err:
                raise failure(str(err), shown, cotangent, grad_z) from None
            if grad_zq is not None and grad_zq.abs().gt(1e-8).any():
                raise failure("zq received a gradient through the straight-through path: detach the whole "
                              "difference (zq - z); the codebook learns from the codebook loss instead",
                              shown, torch.zeros_like(cotangent), grad_zq)
        return run

    return run_check("straight_through", [case(s) for s in [(2, 3), (4, 8), (1, 16), (2, 3, 5, 5)]])


# --------------------------------------------------------------------------- multi-scale residual encoding
def _identity_phi(si: int, h: Tensor) -> Tensor:
    return h


def _variant_indices(f: Tensor, codebook: Tensor, patch_nums: Sequence[int], phi, *, subtract: str = "phi",
                     down: str = "area", up: str = "bicubic", phi_first: bool = False) -> list[Tensor]:
    """Token maps of a common wrong version of the encoding (what is subtracted, which resampling)."""
    size = f.shape[-1]
    f_rest, out = f.detach().clone(), []
    with torch.no_grad():
        for si, pn in enumerate(patch_nums):
            z = f_rest if pn == size else F.interpolate(f_rest, size=(pn, pn), mode=down)  # (B, C, pn, pn)
            idx = reference_nearest_code(rearrange(z, "b c h w -> b (h w) c"), codebook)  # (B, pn*pn)
            h = F.embedding(idx, codebook)  # (B, pn*pn, C)
            h = rearrange(h, "b (h w) c -> b c h w", h=pn, w=pn)  # (B, C, pn, pn)
            if phi_first:
                h = phi(si, h)
            if pn != size:
                h = F.interpolate(h, size=(size, size), mode=up)  # (B, C, H, W)
                z_up = F.interpolate(z, size=(size, size), mode=up)  # (B, C, H, W)
            else:
                z_up = z
            if subtract == "phi":
                f_rest = f_rest - (h if phi_first else phi(si, h))
            elif subtract == "raw":
                f_rest = f_rest - h
            elif subtract == "input":
                f_rest = f_rest - z_up
            out.append(idx)
    return out


_AREA = "downsample the residual with F.interpolate(..., mode='area') (an average over each cell)"
_RAW = ("you subtracted the upsampled embedding before phi: subtract phi(h), the same term you add to f_hat")
_NO_PHI = ("phi is missing: apply h = phi(si, h) to each upsampled embedding, then add that to f_hat and "
           "subtract it from the residual")
_PHI_FIRST = "phi was applied before upsampling: upsample the embedding to H x W first, then apply phi(si, h)"
_ENCODE_MISTAKES = [
    ({"subtract": "none"}, ("every scale quantized f itself: subtract each scale's contribution phi(h) "
                            "from the residual before the next scale")),
    ({"subtract": "raw"}, _RAW),
    ({"subtract": "input"}, ("you subtracted the (resampled) residual itself: subtract the quantized "
                             "contribution phi(h) built from the chosen codes")),
    ({"phi_first": True}, _PHI_FIRST),
    ({"down": "bilinear"}, f"{_AREA}, not bilinear"),
    ({"down": "nearest"}, f"{_AREA}, not nearest"),
    ({"down": "bicubic"}, f"{_AREA}, not bicubic"),
    ({"up": "bilinear"}, "upsample each embedding with mode='bicubic', not bilinear"),
    ({"up": "nearest"}, "upsample each embedding with mode='bicubic', not nearest"),
    ({"up": "area"}, "upsample each embedding with mode='bicubic', not area"),
]


def _check_scale_indices(got: list[Tensor], f: Tensor, codebook: Tensor, patch_nums: Sequence[int], phi,
                         f_hat) -> None:
    """Each scale's tokens must be nearest codes of the true residual left by the learner's earlier tokens."""
    size = f.shape[-1]
    shown = {"f": f, "codebook": codebook, "patch_nums": tuple(patch_nums)}
    with torch.no_grad():
        f_rest = f.clone()
        for si, pn in enumerate(patch_nums):
            z = f_rest if pn == size else F.interpolate(f_rest, size=(pn, pn), mode="area")  # (B, C, pn, pn)
            flat = rearrange(z, "b c h w -> (b h w) c")  # (B*pn*pn, C)
            row = _first_not_nearest(flat, codebook, got[si].reshape(-1))
            if row is not None:
                b, p = divmod(row, pn * pn)
                expected_token = int(_squared_distances(flat, codebook)[row].argmin())
                where = f"indices[{si}] (scale {pn}x{pn})"
                found = []
                for options, message in _ENCODE_MISTAKES:
                    variant = _variant_indices(f, codebook, patch_nums, phi, **options)
                    if all(torch.equal(g, v) for g, v in zip(got, variant)):
                        if message is _RAW and _sums_without_phi(f_hat, got, codebook, patch_nums):
                            message = _NO_PHI
                        found.append(message)
                if found:
                    raise failure(f"{where}: {' OR '.join(found)}; first at image {b}, token {p}", shown,
                                  expected_token, int(got[si].reshape(-1)[row]))
                raise failure(f"{where}, image {b}, token {p}: "
                              + _not_nearest_message(flat, codebook, got[si].reshape(-1), row)
                              + " to the area-downsampled residual", shown,
                              expected_token, int(got[si].reshape(-1)[row]))
            f_rest = f_rest - phi(si, embed_and_upsample(got[si], codebook, pn, size))


def _decode_phi_first(indices: list[Tensor], codebook: Tensor, patch_nums: Sequence[int], phi, size: int) -> Tensor:
    """f_hat when phi is applied to each pn x pn embedding before upsampling (a typical mistake)."""
    with torch.no_grad():
        f_hat = 0
        for si, (idx, pn) in enumerate(zip(indices, patch_nums)):
            h = rearrange(F.embedding(idx, codebook), "b (h w) c -> b c h w", h=pn, w=pn)  # (B, C, pn, pn)
            h = phi(si, h)
            if pn != size:
                h = F.interpolate(h, size=(size, size), mode="bicubic")  # (B, C, H, W)
            f_hat = f_hat + h
    return f_hat


def _sums_without_phi(f_hat, indices: list[Tensor], codebook: Tensor, patch_nums: Sequence[int]) -> bool:
    """True when f_hat is the plain sum of the upsampled embeddings of `indices` (phi left out)."""
    if not isinstance(f_hat, Tensor):
        return False
    with torch.no_grad():
        no_phi = multiscale_decode(indices, codebook, patch_nums, None)  # (B, C, H, W)
    return f_hat.shape == no_phi.shape and torch.allclose(f_hat.detach(), no_phi, atol=1e-4)


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
            _check_scale_indices(indices, f, codebook, patch_nums, phi, f_hat)
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
                        raise Mismatch(f"f_hat is the sum of the upsampled embeddings: {_NO_PHI}")
                    if torch.allclose(f_hat.detach(), _decode_phi_first(indices, codebook, patch_nums, phi, size),
                                      atol=1e-4):
                        raise Mismatch(f"f_hat: {_PHI_FIRST}")
                    if torch.allclose(f_hat.detach(), f, atol=1e-4):
                        raise Mismatch("f_hat is f itself: it must be the sum of the quantized contributions "
                                       "phi(si, h) of the chosen codes")
            shown = {"f": f, "codebook": codebook, "patch_nums": tuple(patch_nums)}
            try:
                assert_close("f_hat", f_hat, expected.detach(), atol=1e-4, rtol=1e-3)
            except Mismatch as err:
                raise failure(str(err), shown, expected, f_hat) from None
            if not f_hat.requires_grad:
                raise Mismatch("f_hat carries no gradient to the codebook: build it from codebook rows "
                               "(F.embedding(idx, codebook)) outside torch.no_grad(), without .detach()")
            cotangent = torch.randn(expected.shape, generator=generator)
            (got_grad,) = torch.autograd.grad(f_hat, [codebook_in], cotangent, allow_unused=True)
            (expected_grad,) = torch.autograd.grad(expected, [reference_codebook], cotangent)
            if got_grad is None:
                raise Mismatch("gradient of codebook: f_hat does not depend on the codebook")
            try:
                assert_close("gradient of codebook", got_grad, expected_grad, atol=1e-4, rtol=1e-3)
            except Mismatch as err:
                raise failure(str(err), shown, expected_grad, got_grad) from None
        return run

    # smallest first, so that a mismatch is shown on the smallest input that reveals it
    cases = [(1, 2, 8, (1, 2), False), (1, 4, 16, (1, 2), True), (2, 4, 16, (1, 2, 3, 4), False),
             (2, 8, 32, (1, 2, 3, 4), True), (3, 4, 24, (1, 2, 4, 8), False), (1, 8, 64, VAR_PATCH_NUMS, True)]
    return run_check("residual_multiscale_encode", [case(*c) for c in cases])
