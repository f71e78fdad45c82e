"""Chapter 07 graders accept the library's functions and name the mistake of specific wrong variants."""

import torch

from learnlib import check
from learnlib.splat import (
    TRANSMITTANCE_MIN,
    composite_front_to_back,
    covariance_3d,
    project_gaussian,
    quat_to_rotmat,
)


def _ewa(mean, cov3d, viewmat, K):
    proj = project_gaussian(mean, cov3d, viewmat, K, eps2d=0.0)
    return proj.mean2d, proj.cov2d


def test_graders_accept_the_library(capsys):
    assert check.project_gaussian(_ewa)
    assert check.composite_front_to_back(composite_front_to_back)
    assert check.covariance_3d(covariance_3d)
    assert capsys.readouterr().out.count("PASSED") == 3


def test_projection_without_jacobian_is_named():
    def no_jacobian(mean, cov3d, viewmat, K):
        W = viewmat[:3, :3]
        return _ewa(mean, cov3d, viewmat, K)[0], (W @ cov3d @ W.T)[:2, :2]

    result = check.project_gaussian(no_jacobian)
    assert not result and "Jacobian J of the projection is missing" in result.message


def test_projection_without_view_rotation_is_named():
    def world_covariance(mean, cov3d, viewmat, K):
        x, y, z = viewmat[:3, :3] @ mean + viewmat[:3, 3]
        J = torch.stack([torch.stack([K[0, 0] / z, 0 * z, -K[0, 0] * x / z**2]),
                         torch.stack([0 * z, K[1, 1] / z, -K[1, 1] * y / z**2])])  # (2, 3)
        return _ewa(mean, cov3d, viewmat, K)[0], J @ cov3d @ J.T

    result = check.project_gaussian(world_covariance)
    assert not result and "camera frame" in result.message


def test_projection_without_gradient_is_rejected():
    def detached(mean, cov3d, viewmat, K):
        with torch.no_grad():
            return _ewa(mean, cov3d, viewmat, K)

    result = check.project_gaussian(detached)
    assert not result and "no gradient" in result.message


def test_back_to_front_compositing_is_named():
    def reversed_order(colors, alphas, background=None):
        return composite_front_to_back(colors.flip(-2), alphas.flip(-1), background)  # last layer taken as nearest

    result = check.composite_front_to_back(reversed_order)
    assert not result and "reverse order" in result.message


def test_compositing_without_early_termination_is_named():
    def no_stop(colors, alphas, background=None):
        t_before = torch.cumprod(torch.cat([torch.ones_like(alphas[..., :1]), 1 - alphas[..., :-1]], -1), -1)
        weights = alphas * t_before
        color = (weights.unsqueeze(-1) * colors).sum(-2)  # (..., D)
        alpha = weights.sum(-1, keepdim=True)  # (..., 1)
        return (color if background is None else color + (1 - alpha) * background), alpha

    result = check.composite_front_to_back(no_stop)
    assert not result and "TRANSMITTANCE_MIN" in result.message


def test_compositing_returning_transmittance_is_named():
    def returns_t(colors, alphas, background=None):
        color, alpha = composite_front_to_back(colors, alphas, background)
        return color, 1 - alpha

    result = check.composite_front_to_back(returns_t)
    assert not result and "accumulated alpha" in result.message


def test_covariance_mistakes_are_named():
    result = check.covariance_3d(lambda q, s: covariance_3d(q.roll(1, dims=-1), s))  # xyzw read as wxyz
    assert not result and "(w, x, y, z)" in result.message
    result = check.covariance_3d(lambda q, s: covariance_3d(q, s.sqrt()))  # R S R^T
    assert not result and "squared scales" in result.message


def test_stubs_report_not_implemented():
    def stub(*args):
        raise NotImplementedError("exercise")

    for grader in (check.project_gaussian, check.composite_front_to_back, check.covariance_3d):
        result = grader(stub)
        assert not result and "not implemented yet" in result.message


# --------------------------------------------------------------------------- named mistakes (values)
def _camera_point(mean, viewmat):
    return viewmat[:3, :3] @ mean + viewmat[:3, 3]


def _jacobian(t, K, sign=-1.0):
    x, y, z = t
    zero = 0 * z
    return torch.stack([torch.stack([K[0, 0] / z, zero, sign * K[0, 0] * x / z**2]),
                        torch.stack([zero, K[1, 1] / z, sign * K[1, 1] * y / z**2])])  # (2, 3)


def test_projection_with_the_blur_added_is_named():
    def blurred(mean, cov3d, viewmat, K):
        proj = project_gaussian(mean, cov3d, viewmat, K)  # eps2d = 0.3 by default
        return proj.mean2d, proj.cov2d

    result = check.project_gaussian(blurred)
    assert not result and "0.3 screen-space blur" in result.message


def test_projection_with_wrong_jacobian_sign_is_named():
    def plus_sign(mean, cov3d, viewmat, K):
        W = viewmat[:3, :3]
        J = _jacobian(_camera_point(mean, viewmat), K, sign=1.0)
        return _ewa(mean, cov3d, viewmat, K)[0], J @ W @ cov3d @ W.T @ J.T

    result = check.project_gaussian(plus_sign)
    assert not result and "wrong sign" in result.message and "-fx x / z^2" in result.message


def test_projection_with_transposed_rotation_is_named():
    def transposed(mean, cov3d, viewmat, K):
        W = viewmat[:3, :3]
        J = _jacobian(_camera_point(mean, viewmat), K)
        return _ewa(mean, cov3d, viewmat, K)[0], J @ W.T @ cov3d @ W @ J.T

    result = check.project_gaussian(transposed)
    assert not result and "rotation is used transposed" in result.message and "W Sigma W^T" in result.message


def test_projection_of_the_mean_without_world_to_camera_is_named():
    def world_mean(mean, cov3d, viewmat, K):
        x, y, z = mean
        return torch.stack([K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]]), _ewa(mean, cov3d, viewmat, K)[1]

    result = check.project_gaussian(world_mean)
    assert not result and "world coordinates" in result.message and "mean2d" in result.message


def test_projection_with_a_detached_jacobian_is_named_from_the_gradient():
    def constant_jacobian(mean, cov3d, viewmat, K):
        W = viewmat[:3, :3]
        J = _jacobian(_camera_point(mean, viewmat).detach(), K)
        return _ewa(mean, cov3d, viewmat, K)[0], J @ W @ cov3d @ W.T @ J.T

    result = check.project_gaussian(constant_jacobian)
    assert not result and "gradient of mean" in result.message and "torch.stack" in result.message


def test_projection_mismatch_shows_the_smallest_input_and_both_values():
    result = check.project_gaussian(lambda *a: (_ewa(*a)[0], 2 * _ewa(*a)[1]))
    assert not result and "(case 1)" in result.message  # the hand-made case comes first
    for line in ("input mean = [0.5, 0.3, -0.4]", "input K = [[50, 0, 32], [0, 40, 24], [0, 0, 1]]",
                 "expected: [[", "received: [["):
        assert line in result.message
    assert result.message.endswith("for a hint: learnlib.check.hint('project_gaussian')")


def _composite(colors, alphas, background=None, crossing=False, update_first=False, blend_background=True):
    """The reference compositing with one switch per typical mistake."""
    if crossing:
        t_before = torch.cumprod(torch.cat([torch.ones_like(alphas[..., :1]), 1 - alphas[..., :-1]], -1), -1)
        kept = alphas * (t_before > TRANSMITTANCE_MIN)
    else:
        kept = alphas * (torch.cumprod(1 - alphas, -1) > TRANSMITTANCE_MIN)
    t_after = torch.cumprod(1 - kept, -1)
    t_before = torch.cat([torch.ones_like(t_after[..., :1]), t_after[..., :-1]], -1)
    weights = kept * (t_after if update_first else t_before)
    color = (weights.unsqueeze(-1) * colors).sum(-2)  # (..., D)
    alpha = weights.sum(-1, keepdim=True)  # (..., 1)
    if background is not None and blend_background:
        color = color + (1 - alpha) * background
    return color, alpha


def test_composite_helper_is_the_reference_without_switches():
    assert check.composite_front_to_back(_composite)


def test_compositing_off_by_one_termination_is_named():
    result = check.composite_front_to_back(lambda c, a, b=None: _composite(c, a, b, crossing=True))
    assert not result and "off by one" in result.message and "(case 1)" in result.message
    assert "input alphas = [[0.5, 0.3, 0.99, 0.99, 0.6]]" in result.message


def test_compositing_transmittance_updated_before_use_is_named():
    result = check.composite_front_to_back(lambda c, a, b=None: _composite(c, a, b, update_first=True))
    assert not result and "updated before it was used" in result.message


def test_compositing_without_background_is_named():
    result = check.composite_front_to_back(lambda c, a, b=None: _composite(c, a, b, blend_background=False))
    assert not result and "background is not blended" in result.message and "(1 - alpha)" in result.message


def test_covariance_unnormalized_quaternion_and_transposed_rotation_are_named():
    def unnormalized(quats, scales):
        w, x, y, z = quats.unbind(-1)
        R = torch.stack([
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)
        M = R * scales.unsqueeze(-2)  # (N, 3, 3)
        return M @ M.transpose(-1, -2)

    result = check.covariance_3d(unnormalized)
    assert not result and "not normalized" in result.message and "input quats = [[" in result.message

    def transposed(quats, scales):
        R = quat_to_rotmat(quats).transpose(-1, -2)
        M = R * scales.unsqueeze(-2)  # (N, 3, 3)
        return M @ M.transpose(-1, -2)

    result = check.covariance_3d(transposed)
    assert not result and "rotation is transposed" in result.message
