"""Training memory per device, estimated from the model's shapes and checked against measurement.

    from learnlib.memory import estimate
    print(estimate("var_d16", batch_per_device=96, precision="bf16").table())

`estimate` (cheap at any size: a FakeTensor trace) and the measurements `measure_cpu` (real
tensors), `measure_total_peak` (the CPU allocator's peak of a whole step) and `measure_cuda` (the
CUDA allocator's peak) describe the same step;
`python -m learnlib.memory experiment=var_d16 trainer.batch_size=768 devices=8 gpu=H100-80GB`
prints the breakdown, whether it fits and the largest batch per device that does. The estimator is
generic: each model family registers its training step (and, where its memory needs one, its own
unit and estimate) in its own room through `learnlib.workloads` (e.g. the SLat VAE, estimated
per voxel budget in learnlib.slat.memory).
"""

from learnlib.memory.analytic import adamw_memory, block_activation_bytes
from learnlib.memory.breakdown import MemoryBreakdown
from learnlib.memory.estimate import estimate
from learnlib.memory.gpus import GPUS, fits, gpu_capacity, largest_batch, needed_gib
from learnlib.memory.measure import (
    measure_activations,
    measure_cpu,
    measure_cuda,
    measure_state,
    measure_total_peak,
)
from learnlib.memory.spec import resolve
from learnlib.nn.saved_tensors import SavedTensors, SavedTensorTracker
from learnlib.workloads import FamilyWorkload, register_workload

__all__ = [
    "GPUS", "FamilyWorkload", "MemoryBreakdown", "SavedTensorTracker", "SavedTensors", "adamw_memory",
    "block_activation_bytes", "estimate", "fits", "gpu_capacity", "largest_batch", "measure_activations",
    "measure_cpu", "measure_cuda", "measure_state", "measure_total_peak", "needed_gib", "register_workload", "resolve",
]
