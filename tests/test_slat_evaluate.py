"""Object-level held-out scores of chapter 08 (`learnlib.slat.evaluate`)."""

import math

import pytest
import torch

from learnlib.slat.evaluate import heldout_scores, voxel_splats
from learnlib.splat.cameras import hammersley_cameras


def views(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    alphas = torch.zeros(2, 16, 16)
    alphas[:, 4:12, 6:10] = 1.0  # a 8 x 4 object in each view
    targets = torch.rand(2, 3, 16, 16, generator=g) * alphas[:, None]  # (V, 3, H, W) over black
    return targets, alphas


def test_black_render_is_scored_on_the_reference_silhouette_only():
    targets, alphas = views()
    scores = heldout_scores(torch.zeros_like(targets), torch.zeros_like(alphas), targets, alphas)
    inside = targets.permute(0, 2, 3, 1)[alphas > 0]  # (pixels, 3)
    mse = [float(targets[v].permute(1, 2, 0)[alphas[v] > 0].pow(2).mean()) for v in range(2)]
    assert scores["masked_psnr"].tolist() == pytest.approx([-10 * math.log10(m) for m in mse], abs=1e-4)
    assert scores["iou"].tolist() == [0.0, 0.0]
    full = [-10 * math.log10(float(targets[v].pow(2).mean())) for v in range(2)]
    assert scores["psnr"].tolist() == pytest.approx(full, abs=1e-4)
    assert all(m < f for m, f in zip(scores["masked_psnr"].tolist(), full))  # background inflates the full PSNR
    assert len(inside) == 2 * 32


def test_background_paint_counts_and_a_perfect_render_scores_top():
    targets, alphas = views()
    perfect = heldout_scores(targets, alphas, targets, alphas)
    assert perfect["iou"].tolist() == [1.0, 1.0] and perfect["ssim"].min() > 0.999
    painted, painted_alpha = targets.clone(), alphas.clone()
    painted[:, :, 0, :], painted_alpha[:, 0, :] = 1.0, 1.0  # a white stripe on the background
    scores = heldout_scores(painted, painted_alpha, targets, alphas)
    # 16 wrong pixels (error 1 in every channel) among the 32 + 16 measured ones
    assert scores["masked_psnr"].tolist() == pytest.approx([-10 * math.log10(16 / 48)] * 2, abs=1e-4)
    assert scores["iou"].tolist() == pytest.approx([32 / 48] * 2)
    with pytest.raises(ValueError, match="alphas"):
        heldout_scores(targets, alphas[:, None], targets, alphas)


def test_voxel_splats_take_the_colour_of_their_projections():
    cameras = hammersley_cameras(4, width=16)
    images = torch.tensor([0.2, 0.6, 0.9]).view(1, 3, 1, 1).expand(4, 3, 16, 16)  # one colour everywhere
    coords = torch.tensor([[3, 4, 5], [0, 0, 0], [7, 7, 7]])
    splats = voxel_splats(coords, 8, images, torch.ones(4, 1, 16, 16), cameras)
    assert torch.allclose(splats.colors, torch.tensor([[0.2, 0.6, 0.9]]).expand(3, 3), atol=1e-5)
    assert torch.allclose(splats.scales, torch.full((3, 3), 0.5 / 8), atol=1e-6)
