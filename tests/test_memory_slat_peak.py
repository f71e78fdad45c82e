"""The SLat VAE's estimate against the measured total peak of a whole CPU training step, and bf16's weight copies.

Total = parameters + gradients + AdamW moments + buffers + saved activations + the step's transient
peak (the PyTorch rasterizer's (pixel, Gaussian) temporaries above all); measured with torch's CPU
allocator events (learnlib.nn.cpu_peak) at voxel counts the calibration (512, 1024) does not use.
"""

import pytest
import torch

from learnlib import models
from learnlib.memory.estimate import estimate_workload
from learnlib.nn.cpu_peak import CpuPeak
from learnlib.slat.memory import RenderSetting, slat_workload, weight_copy_bytes
from learnlib.slat.memory_step import measure_peak, measure_saved

TOLERANCE = 0.10
SPARSE = {"sdpa": "sdpa", "math": "reference"}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = models.create("slat_vae_tiny", decoder={"num_gaussians": 8})  # as experiment slat_vae_meshes
    return model, slat_workload(model)


def test_cpu_peak_counts_the_highest_point_of_the_allocator():
    with CpuPeak() as peak:
        a = torch.ones(1000, 1000)  # 4 MB
        b = a * 2  # 8 MB live
        del a
        c = torch.ones(2000, 1000)  # 4 + 8 = 12 MB live: the peak
        del b, c
    assert (peak.peak, peak.end) == (12_000_000, 0)


@pytest.mark.parametrize("precision, backend, voxels", [("fp32", "sdpa", 2000), ("bf16", "math", 700)])
def test_total_within_ten_percent_of_the_measured_step_peak(tiny, precision, backend, voxels):
    model, workload = tiny
    est = estimate_workload(workload, voxels, precision, "adamw", "ddp", 1, False, backend)
    measured = measure_peak(model, voxels, 64, precision=precision, backend=SPARSE[backend], with_saved=True)
    assert est.total == pytest.approx(measured.total, rel=TOLERANCE)
    # the transient is a real part of the peak (the rasterizer's pairs), not slack: a third of the activations
    assert measured.step_peak - measured.saved > 0.3 * measured.saved
    assert est.transient == pytest.approx(measured.step_peak - measured.saved, rel=TOLERANCE)


def test_gsplat_transient_is_not_counted_the_torch_rasterizers_is(tiny):
    _, workload = tiny
    torch_raster = estimate_workload(workload, 2000, "fp32", "adamw", "ddp", 1, False, "sdpa")
    cuda = estimate_workload(workload, 2000, "fp32", "adamw", "ddp", 1, False, "auto")
    assert cuda.transient == 0 < torch_raster.transient
    assert ("transient", torch_raster.transient) in torch_raster.rows()
    assert "transient" not in dict(cuda.rows())


@pytest.fixture(scope="module")
def wide():
    torch.manual_seed(0)
    model = models.create("slat_vae_tiny", decoder={"num_gaussians": 2}, model_channels=256, num_heads=4)
    return model, slat_workload(model, RenderSetting(32, 1, 2))  # two objects per step


@pytest.mark.parametrize("per_object", [1024, 150])  # 2 x 1024 and 2 x 150 voxels: not the calibration's 512, 1024
def test_bf16_counts_autocast_weight_copies_once_per_block(wide, per_object):
    model, workload = wide
    block = model.blocks[0]
    linear = sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Linear))
    assert weight_copy_bytes(block, "bf16") == 2 * linear and weight_copy_bytes(block, "fp32") == 0
    est = estimate_workload(workload, 2 * per_object, "bf16", "adamw", "ddp", 1, False, "sdpa")
    measured = measure_saved(model, per_object, 32, 1, 2, "bf16", "sdpa")
    assert est.activations == pytest.approx(measured.total, rel=TOLERANCE)
