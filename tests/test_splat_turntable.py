"""Turntable animations and GIFs (learnlib.splat.turntable)."""

import base64
import importlib
import math
import re
import textwrap

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from learnlib.splat import (
    Gaussians,
    gaussians_render_fn,
    gif_bytes,
    project_points,
    save_gif,
    show_gif,
    side_by_side,
    turntable,
    turntable_cameras,
    turntable_comparison,
)
from learnlib.splat.cameras import camera_to_world


def blobs(means, colors):
    """Isotropic Gaussians (rotation does not matter) at `means` (N, 3)."""
    n = len(means)
    return Gaussians.from_activated(means, torch.full((n, 3), 0.12), torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4),
                                    torch.full((n,), 0.9), colors)


def scene():
    means = torch.tensor([[0.4, 0.0, 0.0], [0.0, -0.3, 0.1], [-0.2, 0.2, -0.2]])
    colors = torch.tensor([[1.0, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 1.0]])
    return means, colors


def test_turntable_cameras_circle_the_target_once():
    target = (0.1, -0.2, 0.3)
    cams = turntable_cameras(8, radius=2.5, pitch=math.radians(30), width=20, height=16, target=target)
    assert len(cams) == 8 and (cams.width, cams.height) == (20, 16)
    offsets = camera_to_world(cams.viewmats)[:, :3, 3] - torch.tensor(target)  # (8, 3) eye - target
    torch.testing.assert_close(offsets.norm(dim=1), torch.full((8,), 2.5))
    torch.testing.assert_close(offsets[:, 2], torch.full((8,), 2.5 * math.sin(math.radians(30))))
    yaws = torch.atan2(offsets[:, 0], offsets[:, 1])  # yaw 0 looks from +y, as in sphere_eye
    steps = torch.remainder(yaws.roll(-1) - yaws, 2 * math.pi)
    torch.testing.assert_close(steps, torch.full((8,), 2 * math.pi / 8))
    for i in range(8):  # every camera sees the target at the image centre
        uv, depth = project_points(torch.tensor(target), cams.viewmats[i], cams.Ks[i])
        torch.testing.assert_close(uv, torch.tensor([10.0, 8.0]), atol=1e-4, rtol=0)
        assert depth > 0


def test_a_quarter_turn_of_the_scene_is_a_one_frame_shift_of_the_turntable():
    means, colors = scene()
    rotate = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # -90 degrees about z
    frames = turntable(gaussians_render_fn(blobs(means, colors), backend="reference"), 4, width=24)
    turned = turntable(gaussians_render_fn(blobs(means @ rotate.T, colors), backend="reference"), 4, width=24)
    assert len(frames) == 4 and frames[0].shape == (24, 24, 3) and frames[0].dtype == np.uint8
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).max() > 50  # the view changes
    for k in range(4):
        assert np.abs(frames[(k + 1) % 4].astype(int) - turned[k].astype(int)).max() <= 1


def test_a_blob_at_the_target_looks_the_same_from_everywhere_on_the_circle():
    frames = turntable(gaussians_render_fn(blobs(torch.zeros(1, 3), torch.tensor([[0.2, 0.4, 0.9]])),
                                           background=(0.0, 0.0, 0.0), backend="reference"), 6, width=16)
    for frame in frames:
        assert np.abs(frame.astype(int) - frames[0].astype(int)).max() <= 1
    assert tuple(frames[0][8, 8]) != (0, 0, 0) and tuple(frames[0][0, 0]) == (0, 0, 0)


def test_render_functions_may_return_tuples_and_must_match_the_camera():
    gaussians = blobs(*scene())
    via_tuple = turntable(lambda cams: gaussians.render(cams.viewmats, cams.Ks, cams.width, cams.height,
                                                        backgrounds=torch.ones(1, 3), backend="reference"), 3, width=12)
    assert all(np.array_equal(a, b) for a, b in zip(via_tuple,
                                                     turntable(gaussians_render_fn(gaussians, backend="reference"), 3,
                                                               width=12)))
    with pytest.raises(ValueError, match=r"12 x 12 px like its camera, got \[10, 12, 3\]"):
        turntable(lambda cams: torch.zeros(1, 10, 12, 3), 2, width=12)
    with pytest.raises(ValueError, match=r"\(1, H, W, 3\) or \(H, W, 3\) RGB, got \[1, 3, 12, 12\]"):
        turntable(lambda cams: torch.zeros(1, 3, 12, 12), 2, width=12)


def test_side_by_side_places_frames_left_to_right():
    left = [np.full((4, 3, 3), 10, np.uint8), np.full((4, 3, 3), 20, np.uint8)]
    right = [np.full((4, 5, 3), 30, np.uint8), np.full((4, 5, 3), 40, np.uint8)]
    out = side_by_side(left, right, gap=2, gap_value=7)
    assert len(out) == 2 and out[1].shape == (4, 10, 3)
    assert np.all(out[1][:, :3] == 20) and np.all(out[1][:, 3:5] == 7) and np.all(out[1][:, 5:] == 40)
    with pytest.raises(ValueError, match="of one length"):
        side_by_side(left, right[:1])
    with pytest.raises(ValueError, match="of one height"):
        side_by_side(left, [np.zeros((5, 5, 3), np.uint8)] * 2)


def test_comparison_shows_reference_then_decoded():
    means, colors = scene()
    reference, decoded = blobs(means, colors), blobs(means + 0.05, colors)
    out = turntable_comparison(reference, decoded, n_frames=2, gap=1, width=16)
    alone = turntable(gaussians_render_fn(reference), 2, width=16)
    assert out[0].shape == (16, 33, 3)
    assert np.array_equal(out[1][:, :16], alone[1]) and not np.array_equal(out[1][:, 17:], alone[1])


def test_gif_round_trips_and_loops(tmp_path):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)  # few colours: the GIF palette keeps them exactly
    frames = [palette[rng.integers(0, 16, (12, 20))] for _ in range(5)]
    path = save_gif(frames, tmp_path / "spin.gif", fps=10)
    back = iio.imread(path, index=None)
    assert back.shape[:3] == (5, 12, 20) and np.array_equal(back[..., :3], np.stack(frames))
    meta = iio.immeta(path)
    assert meta["loop"] == 0 and meta["duration"] == 100
    assert path.read_bytes() == gif_bytes(frames, fps=10) and [p.name for p in tmp_path.iterdir()] == ["spin.gif"]
    with pytest.raises(ValueError, match="uint8"):
        gif_bytes([np.zeros((4, 4, 3))])
    with pytest.raises(ValueError, match="at least one frame"):
        gif_bytes([])


def test_inline_gif_has_fixed_text_and_a_sanitizable_payload():
    frames = turntable(gaussians_render_fn(blobs(*scene()), backend="reference"), 3, width=10)
    shown = show_gif(frames)
    bundle = shown._repr_mimebundle_()
    assert bundle["text/plain"] == "<turntable GIF: 3 frames of 10 x 10 px>"
    assert base64.b64decode(bundle["image/gif"]) == gif_bytes(frames)
    get_sanitize_patterns = pytest.importorskip("nbval.plugin").get_sanitize_patterns
    doc = importlib.import_module("learnlib.splat.turntable").__doc__  # the package's `turntable` is the function
    (pattern, replacement), = get_sanitize_patterns(textwrap.dedent(doc[doc.index("    [gif]"):]))  # the proposed rule
    wrapped = "\n".join(bundle["image/gif"][i:i + 76] for i in range(0, len(bundle["image/gif"]), 76))
    assert re.sub(pattern, replacement, bundle["image/gif"]) == replacement
    assert re.sub(pattern, replacement, wrapped + "\n") == replacement
