"""From 3D Gaussians to 2D screen-space Gaussians (EWA splatting).

Steps, each its own function so that they can be read and tested one by one:
1. `quat_to_rotmat`, `covariance_3d`: Sigma = R S S^T R^T from a wxyz quaternion and scales;
2. `world_to_camera`: mean and covariance in camera coordinates, t = W mu + w, Sigma' = W Sigma W^T;
3. `perspective_jacobian`: J of (x, y, z) -> (fx x / z + cx, fy y / z + cy) at the mean;
4. `project_covariance`: the 2D covariance J Sigma' J^T (a local affine approximation);
5. `add_blur`: the anti-aliasing low-pass filter (eps2d on the diagonal) and the
   Mip-Splatting opacity compensation sqrt(det / det_blurred);
6. `conic_from_covariance`, `radius_from_covariance`: inverse covariance (a, b, c) for
   evaluating exp(-0.5 d^T Sigma2d^-1 d) and the per-axis screen radii used for tiles and culling
   (gsplat 1.5's rule: 3.33 sigma per axis, tightened to where the alpha can reach 1/255).

`project_gaussian` runs the chain for one Gaussian; `project_gaussians` for N Gaussians and C
cameras with near/far and off-screen culling, mirroring gsplat's fully fused projection.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from learnlib.splat.cameras import camera_to_pixels, world_to_camera_points


def normalize_quats(quats: Tensor, eps: float = 1e-12) -> Tensor:
    """Unit wxyz quaternions [..., 4]; a (near) zero quaternion becomes the identity (1, 0, 0, 0).

    The fallback keeps a training step alive when a raw quaternion collapses to zero, instead of
    producing NaN; the gradient through a replaced quaternion is zero.
    """
    if quats.shape[-1] != 4:
        raise ValueError(f"quaternions must be [..., 4] (w, x, y, z), got {tuple(quats.shape)}")
    norm = quats.norm(dim=-1, keepdim=True)
    degenerate = norm <= eps
    identity = torch.zeros_like(quats)
    identity[..., 0] = 1.0
    safe_norm = torch.where(degenerate, torch.ones_like(norm), norm)
    return torch.where(degenerate, identity, quats / safe_norm)


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] of wxyz quaternions [..., 4] (normalized first)."""
    w, x, y, z = normalize_quats(quats).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))  # (..., 3, 3)


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """3D covariances [..., 3, 3] = R S S^T R^T from quaternions [..., 4] and scales [..., 3]."""
    if scales.shape[-1] != 3 or scales.shape[:-1] != quats.shape[:-1]:
        raise ValueError(f"expected quats [..., 4] and scales [..., 3] with the same leading shape, "
                         f"got {tuple(quats.shape)} and {tuple(scales.shape)}")
    M = quat_to_rotmat(quats) * scales.unsqueeze(-2)  # (..., 3, 3) = R S (column j scaled by s_j)
    return M @ M.transpose(-1, -2)  # (..., 3, 3)


def world_to_camera(means: Tensor, covars: Tensor, viewmats: Tensor) -> tuple[Tensor, Tensor]:
    """Means (C, N, 3) and covariances (C, N, 3, 3) in the frames of C view matrices (C, 4, 4)."""
    R = viewmats[:, :3, :3]  # (C, 3, 3)
    means_c = world_to_camera_points(means, viewmats)  # (C, N, 3)
    covars_c = torch.einsum("cij,njk,clk->cnil", R, covars, R)  # (C, N, 3, 3)
    return means_c, covars_c


def perspective_jacobian(means_c: Tensor, Ks: Tensor, width: int | None = None,
                         height: int | None = None) -> Tensor:
    """Jacobians (C, N, 2, 3) of the pinhole projection at camera-space means (C, N, 3).

    With an image size, x / z and y / z are clamped to 1.3x the field of view (as in 3DGS and
    gsplat) so that Gaussians far off-screen do not get huge footprints.
    """
    x, y, z = means_c.unbind(-1)  # (C, N) each
    fx, fy = Ks[:, 0, 0].unsqueeze(-1), Ks[:, 1, 1].unsqueeze(-1)  # (C, 1)
    cx, cy = Ks[:, 0, 2].unsqueeze(-1), Ks[:, 1, 2].unsqueeze(-1)  # (C, 1)
    if width is not None and height is not None:
        tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
        x = z * torch.clamp(x / z, min=-(cx / fx + 0.3 * tan_x), max=(width - cx) / fx + 0.3 * tan_x)
        y = z * torch.clamp(y / z, min=-(cy / fy + 0.3 * tan_y), max=(height - cy) / fy + 0.3 * tan_y)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * x / (z * z), zero, fy / z, -fy * y / (z * z)], dim=-1)  # (C, N, 6)
    return J.reshape(means_c.shape[:-1] + (2, 3))  # (C, N, 2, 3)


def project_means(means_c: Tensor, Ks: Tensor) -> Tensor:
    """Pixel positions (C, N, 2) of camera-space means (C, N, 3)."""
    return camera_to_pixels(means_c, Ks)


def project_covariance(covars_c: Tensor, J: Tensor) -> Tensor:
    """Screen-space covariances [..., 2, 2] = J Sigma J^T."""
    return J @ covars_c @ J.transpose(-1, -2)  # (..., 2, 2)


def det2(cov2d: Tensor) -> Tensor:
    """Determinants [...] of 2x2 matrices [..., 2, 2]."""
    return cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]


def add_blur(cov2d: Tensor, eps2d: float = 0.3) -> tuple[Tensor, Tensor]:
    """(cov2d + eps2d I, compensation sqrt(det(cov2d) / det(cov2d + eps2d I))).

    The blur is a low-pass filter of about one pixel that keeps every Gaussian at least pixel
    sized; multiplying opacity by the compensation (Mip-Splatting's 2D filter) keeps the total
    mass of small Gaussians unchanged, which makes renders consistent across resolutions.
    """
    det_orig = det2(cov2d)
    blurred = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    det_blur = det2(blurred).clamp_min(1e-10)
    return blurred, torch.sqrt(torch.clamp(det_orig / det_blur, min=0.0))


def conic_from_covariance(cov2d: Tensor) -> Tensor:
    """Inverse covariances as (a, b, c) [..., 3], Sigma^-1 = [[a, b], [b, c]]."""
    det = det2(cov2d).clamp_min(1e-10)
    b = -0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    return torch.stack([cov2d[..., 1, 1], b, cov2d[..., 0, 0]], dim=-1) / det.unsqueeze(-1)  # (..., 3)


ALPHA_THRESHOLD = 1.0 / 255.0  # the smallest alpha a pixel composites (gsplat's ALPHA_THRESHOLD)


def radius_from_covariance(cov2d: Tensor, opacities: Tensor | None = None, n_sigma: float = 3.33) -> Tensor:
    """Integer screen radii [..., 2] (x, y) of the box a Gaussian touches, gsplat 1.5's rule.

    ceil(k sqrt(Sigma_xx)) and ceil(k sqrt(Sigma_yy)) with k = n_sigma, or, given opacities [...],
    k = min(n_sigma, sqrt(2 log(opacity / ALPHA_THRESHOLD))): the box of the ellipse where the
    alpha reaches ALPHA_THRESHOLD (opacities below it give radius 0).
    """
    extent = torch.full_like(cov2d[..., 0, 0], n_sigma)
    if opacities is not None:
        level = torch.log(torch.clamp(opacities / ALPHA_THRESHOLD, min=1.0))
        extent = torch.where(opacities >= ALPHA_THRESHOLD, torch.minimum(extent, torch.sqrt(2.0 * level)), 0.0)
    sd = torch.sqrt(torch.stack([cov2d[..., 0, 0], cov2d[..., 1, 1]], dim=-1).clamp_min(0))  # (..., 2)
    return torch.ceil(extent.unsqueeze(-1) * sd)


class ProjectedGaussian(NamedTuple):
    mean2d: Tensor  # (2,) pixel position
    cov2d: Tensor  # (2, 2) blurred screen covariance
    conic: Tensor  # (3,)
    depth: Tensor  # [] camera z
    compensation: Tensor  # [] sqrt(det / det_blurred)


def project_gaussian(mean: Tensor, cov3d: Tensor, viewmat: Tensor, K: Tensor, eps2d: float = 0.3,
                     width: int | None = None, height: int | None = None) -> ProjectedGaussian:
    """Project one Gaussian (mean [3], covariance (3, 3)) through one camera (viewmat (4, 4), K (3, 3))."""
    if mean.shape != (3,) or cov3d.shape != (3, 3) or viewmat.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"expected mean [3], cov3d (3, 3), viewmat (4, 4), K (3, 3), got "
                         f"{tuple(mean.shape)}, {tuple(cov3d.shape)}, {tuple(viewmat.shape)}, {tuple(K.shape)}")
    means_c, covars_c = world_to_camera(mean[None], cov3d[None], viewmat[None])  # (1, 1, 3), (1, 1, 3, 3)
    J = perspective_jacobian(means_c, K[None], width, height)  # (1, 1, 2, 3)
    cov2d, comp = add_blur(project_covariance(covars_c, J), eps2d)
    return ProjectedGaussian(project_means(means_c, K[None])[0, 0], cov2d[0, 0], conic_from_covariance(cov2d)[0, 0],
                             means_c[0, 0, 2], comp[0, 0])


class Projection(NamedTuple):
    means2d: Tensor  # (C, N, 2)
    conics: Tensor  # (C, N, 3)
    depths: Tensor  # (C, N)
    radii: Tensor  # (C, N, 2) int32 (x, y), 0 = culled
    compensations: Tensor  # (C, N)
    covars2d: Tensor  # (C, N, 2, 2) (blurred)


def project_gaussians(means: Tensor, covars: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                      eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10,
                      opacities: Tensor | None = None, antialiased: bool = False) -> Projection:
    """Project N Gaussians (means (N, 3), covariances (N, 3, 3)) into C cameras.

    A Gaussian is culled (radii 0) as gsplat 1.5's kernel does: when its depth z is below
    near_plane or above far_plane (z == near_plane is kept), when its blurred 2D covariance is
    degenerate, when its opacity [N] (times the compensation if antialiased; only if given) is
    below ALPHA_THRESHOLD, or when its box (`radius_from_covariance`) lies entirely off-screen.
    """
    means_c, covars_c = world_to_camera(means, covars, viewmats)
    z = means_c[..., 2]
    valid = (z >= near_plane) & (z <= far_plane) & (z != 0)
    # Culled Gaussians get a harmless depth so that no NaN/inf enters the graph.
    safe_c = torch.where(valid.unsqueeze(-1), means_c, means_c.detach().new_tensor([0.0, 0.0, 1.0]))  # (C, N, 3)
    J = perspective_jacobian(safe_c, Ks, width, height)
    cov2d, comp = add_blur(project_covariance(covars_c, J), eps2d)
    means2d = project_means(safe_c, Ks)
    conics = conic_from_covariance(cov2d)
    with torch.no_grad():
        opac = None
        if opacities is not None:
            opac = opacities.detach().unsqueeze(0) * (comp.detach() if antialiased else 1.0)  # (C, N)
            valid = valid & (opac >= ALPHA_THRESHOLD)
        radii = radius_from_covariance(cov2d.detach(), opac)  # (C, N, 2)
        valid = valid & (det2(cov2d) > 0) & (radii > 0).any(dim=-1)
        m = means2d.detach()
        inside = ((m[..., 0] + radii[..., 0] > 0) & (m[..., 0] - radii[..., 0] < width)
                  & (m[..., 1] + radii[..., 1] > 0) & (m[..., 1] - radii[..., 1] < height))
        radii = torch.where((valid & inside).unsqueeze(-1), radii, torch.zeros_like(radii)).int()
    return Projection(means2d, conics, z, radii, comp, cov2d)
