"""Training memory per device, estimated from the model's shapes and checked against measurement.

    from learnlib.memory import estimate
    print(estimate("var_d16", batch_per_device=96, precision="bf16").table())

`estimate` (cheap, any size) and the measurements `measure_cpu` / `measure_cuda` return the
same breakdown; `python -m learnlib.memory experiment=var_d16 ...` prints it with the GPUs it fits.
"""

from learnlib.memory.breakdown import MemoryBreakdown
from learnlib.memory.estimate import estimate
from learnlib.memory.saved import SavedTensors, SavedTensorTracker

__all__ = ["MemoryBreakdown", "SavedTensorTracker", "SavedTensors", "estimate"]
