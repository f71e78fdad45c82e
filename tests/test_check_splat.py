"""Chapter 07 graders accept the library's functions and name the mistake of specific wrong variants."""

import torch

from learnlib import check
from learnlib.splat import composite_front_to_back, covariance_3d, project_gaussian


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
