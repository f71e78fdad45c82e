r"""Turntable animations: an object rendered by cameras circling it, side by side, saved as a GIF.

A render function takes a `Cameras` of one camera and returns its image (1, H, W, 3) or
(H, W, 3) in [0, 1] (or a tuple whose first item is that, as `Gaussians.render` and
`learnlib.data.mesh_render.render_views` return), so Gaussians and meshes animate alike.

In a notebook, `show_gif(frames)` displays the animation inline as an `image/gif` output with a
fixed `text/plain` line. The GIF's pixels depend on float rounding, so the stored output needs
an nbval sanitize rule that replaces the base64 GIF (it always starts with "R0lGOD"):

    [gif]
    regex: R0lGOD[A-Za-z0-9+/=\s]*
    replace: GIF
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from learnlib.atomic import write_bytes_atomic
from learnlib.splat.cameras import Cameras, orbit_cameras
from learnlib.splat.gaussians import Gaussians

RenderFn = Callable[[Cameras], object]


def turntable_cameras(n_frames: int = 24, radius: float = 2.0, pitch: float = math.radians(20.0),
                      fov: float = math.radians(40.0), width: int = 64, height: int | None = None,
                      target=(0.0, 0.0, 0.0), start_yaw: float = 0.0) -> Cameras:
    """`n_frames` cameras evenly spaced on one full turn (yaw) at elevation `pitch` radians, all
    looking at `target` (z-up world, `orbit_cameras`)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    yaws = start_yaw + 2.0 * math.pi * torch.arange(n_frames, dtype=torch.float64) / n_frames  # (F,)
    pitches = torch.full((n_frames,), float(pitch), dtype=torch.float64)  # (F,)
    return orbit_cameras(yaws, pitches, radius, fov, width, height, target)


def to_frame(image, width: int | None = None, height: int | None = None) -> np.ndarray:
    """An RGB image (1, H, W, 3) or (H, W, 3) in [0, 1] (tensor or array; or a tuple whose first item
    is one) as a uint8 frame (H, W, 3), clamped and rounded."""
    if isinstance(image, (tuple, list)):
        image = image[0]
    image = torch.as_tensor(image).detach().cpu()
    received = list(image.shape)
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]  # (H, W, 3)
    if image.dim() != 3 or image.shape[-1] != 3:
        raise ValueError(f"a render must be (1, H, W, 3) or (H, W, 3) RGB, got {received}")
    if width is not None and tuple(image.shape[:2]) != (height, width):
        raise ValueError(f"a render must be {height} x {width} px like its camera, got {list(image.shape)}")
    if image.dtype == torch.uint8:
        return image.numpy()
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def turntable(render_fn: RenderFn, n_frames: int = 24, **camera_kwargs) -> list[np.ndarray]:
    """Frames (H, W, 3) uint8 of `render_fn` seen by `turntable_cameras(n_frames, **camera_kwargs)`."""
    cameras = turntable_cameras(n_frames, **camera_kwargs)
    with torch.no_grad():
        return [to_frame(render_fn(cameras[i]), cameras.width, cameras.height) for i in range(len(cameras))]


def gaussians_render_fn(gaussians: Gaussians, background=(1.0, 1.0, 1.0), **rasterize_kwargs) -> RenderFn:
    """A render function drawing `gaussians` over a plain `background` RGB (rasterize keyword
    arguments, e.g. a decoder's `render_kwargs` or backend="reference", pass through)."""
    bg = torch.as_tensor(background, dtype=gaussians.means.dtype, device=gaussians.means.device)
    if bg.shape != (3,):
        raise ValueError(f"background must be one RGB colour [3], got {list(bg.shape)}")

    def render(cameras: Cameras) -> Tensor:
        cameras = cameras.to(gaussians.means.device)
        backgrounds = bg.expand(len(cameras), 3)  # (C, 3)
        colors, _, _ = gaussians.render(cameras.viewmats.to(bg.dtype), cameras.Ks.to(bg.dtype), cameras.width,
                                        cameras.height, backgrounds=backgrounds, **rasterize_kwargs)
        return colors  # (C, H, W, 3)

    return render


def side_by_side(*frame_lists: Sequence[np.ndarray], gap: int = 2, gap_value: int = 255) -> list[np.ndarray]:
    """Frame i of every list placed left to right with `gap` columns of `gap_value` between them."""
    if not frame_lists or len({len(frames) for frames in frame_lists}) != 1:
        raise ValueError(f"need frame lists of one length, got lengths {[len(f) for f in frame_lists]}")
    out = []
    for frames in zip(*frame_lists):
        frames = [np.asarray(frame) for frame in frames]
        if len({frame.shape[0] for frame in frames}) != 1 or any(
                frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8 for frame in frames):
            raise ValueError("frames must be uint8 (H, W, 3) of one height, got "
                             f"{[(str(f.dtype), list(f.shape)) for f in frames]}")
        spacer = np.full((frames[0].shape[0], gap, 3), gap_value, dtype=np.uint8)  # (H, gap, 3)
        pieces = [piece for frame in frames for piece in (frame, spacer)][:-1]
        out.append(np.concatenate(pieces, axis=1))  # (H, sum of widths + gaps, 3)
    return out


def turntable_comparison(reference: RenderFn | Gaussians, decoded: RenderFn | Gaussians, n_frames: int = 24,
                         gap: int = 2, **camera_kwargs) -> list[np.ndarray]:
    """Frames "reference | decoded" of one turntable; Gaussians are drawn over white (`gaussians_render_fn`)."""
    fns = [gaussians_render_fn(x) if isinstance(x, Gaussians) else x for x in (reference, decoded)]
    return side_by_side(*(turntable(fn, n_frames, **camera_kwargs) for fn in fns), gap=gap)


def _check_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    if len(frames) == 0:
        raise ValueError("need at least one frame")
    stack = np.stack([np.asarray(frame) for frame in frames])  # (F, H, W, 3)
    if stack.ndim != 4 or stack.shape[-1] != 3 or stack.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (H, W, 3) of one size, got {stack.dtype} {list(stack.shape)}")
    return stack


def gif_bytes(frames: Sequence[np.ndarray], fps: float = 12.0) -> bytes:
    """An endlessly looping GIF of uint8 frames (H, W, 3) at `fps` frames per second (imageio)."""
    import imageio.v3 as iio

    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return iio.imwrite("<bytes>", _check_frames(frames), extension=".gif", duration=round(1000 / fps), loop=0)


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 12.0) -> Path:
    """Write `gif_bytes(frames, fps)` to `path` (atomically: temporary file, then rename)."""
    return write_bytes_atomic(gif_bytes(frames, fps), path)


class GifDisplay:
    """A GIF that Jupyter shows inline (`image/gif`), with a `text/plain` line that does not depend on pixels."""

    def __init__(self, data: bytes, n_frames: int, width: int, height: int) -> None:
        self.data, self.n_frames, self.width, self.height = data, n_frames, width, height

    def __repr__(self) -> str:
        return f"<turntable GIF: {self.n_frames} frames of {self.width} x {self.height} px>"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"image/gif": base64.b64encode(self.data).decode("ascii"), "text/plain": repr(self)}


def show_gif(frames: Sequence[np.ndarray], fps: float = 12.0) -> GifDisplay:
    """Frames as an inline notebook animation (see the module docstring for the nbval sanitize rule)."""
    stack = _check_frames(frames)
    return GifDisplay(gif_bytes(stack, fps), len(stack), stack.shape[2], stack.shape[1])
