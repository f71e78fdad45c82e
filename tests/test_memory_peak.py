"""The estimate's total against the measured total peak of a whole CPU training step, for the traced families.

Total = parameters + gradients + AdamW moments + buffers + saved activations + the step's transient
(the loss's logits copies and their gradients, the gradients of activations, weight gradients before
accumulation), traced on FakeTensors at batch 1, 2 and 3; measured with torch's CPU allocator events
(learnlib.nn.step_peak) at batches the trace extrapolates to. Torch runs 2 threads here: the buffers
oneDNN's convolution backward keeps per thread, which the estimate does not count, grow with the threads.
"""

import pytest
import torch

from learnlib import models
from learnlib.memory import estimate, measure_total_peak
from learnlib.memory.trace import trace_step
from learnlib.memory.transient import forward_backward_peak, step_transient
from learnlib.nn.live_tensors import LiveTensors
from learnlib.workloads import training_step

TOLERANCE = 0.10
SMALL = {
    "vit": ("vit_tiny_patch16_224", {"depth": 2, "img_size": 64}, 8),
    "var": ("var_d16", {"depth": 2, "embed_dim": 128, "num_heads": 4, "patch_nums": (1, 2, 3, 4, 6)}, 6),
    "vqvae": ("vqvae_ch160", {"ch": 32, "v_patch_nums": (1, 2)}, 4),  # 32 x 32 images
}


@pytest.fixture(scope="module")
def small_models():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield {key: models.create(name, **kw) for key, (name, kw, _) in SMALL.items()}
    torch.set_num_threads(threads)


@pytest.mark.parametrize("key", sorted(SMALL))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_total_within_ten_percent_of_the_measured_step_peak(small_models, key, precision):
    model, batch = small_models[key], SMALL[key][2]
    est = estimate(model, batch, precision=precision)
    measured = measure_total_peak(model, batch, precision)
    assert est.total == pytest.approx(measured.total, rel=TOLERANCE)
    assert est.model_state == pytest.approx(measured.state, rel=1e-3)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_var_transient_is_the_losss_logits_gradients(small_models, precision):
    """VAR's peak is in the loss's backward: the gradients of the log-softmax output and of the
    logits, two fp32 (B, L, V) tensors, next to the saved tensors (all but the loss's own few)."""
    model = small_models["var"]
    batch = 6
    est = estimate(model, batch, precision=precision)
    measured = measure_total_peak(model, batch, precision, with_saved=True)
    logits = 4 * batch * model.L * model.V
    assert est.transient == measured.step_peak - measured.saved
    assert est.transient == pytest.approx(2 * logits, rel=0.01)
    assert est.activations == measured.saved


def test_checkpointed_total_within_ten_percent_of_the_measured_step_peak(small_models):
    model = small_models["var"]
    est = estimate(model, 6, precision="bf16", activation_checkpointing=True)
    measured = measure_total_peak(model, 6, "bf16", activation_checkpointing=True)
    assert est.total == pytest.approx(measured.total, rel=TOLERANCE)


def test_extrapolated_peak_equals_a_trace_at_that_batch(small_models):
    model = small_models["vit"]
    traces = tuple(trace_step(model, b, "bf16") for b in (1, 2, 3))
    assert forward_backward_peak(traces, 7) == max(trace_step(model, 7, "bf16").levels)


def test_optimizer_step_counts_only_above_the_freed_activations():
    assert step_transient(100, 0, 80) == 20  # forward/backward peak 100 over 80 saved
    assert step_transient(100, 150, 80) == 70  # an optimizer temporary of 150 once the 80 are freed
    assert step_transient(50, 0, 80) == 0


def test_live_tensors_count_new_storages_until_freed():
    with LiveTensors() as live:
        a = torch.ones(1000, 1000)  # 4 MB
        b = a * 2  # 8 MB live
        b.add_(1)  # in place: nothing new
        del a
        c = torch.ones(2000, 1000)  # 4 + 8 = 12 MB live: the peak
        del b, c
    assert live.peak == 12_000_000 and live.levels[-1] == 12_000_000


def test_traced_peak_on_fake_tensors_equals_the_real_one(small_models):
    """The same forward and backward on real tensors and on FakeTensors: the same live bytes at every allocation."""
    model = small_models["var"]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    step = training_step(model, 3, generator=torch.Generator().manual_seed(0))
    with LiveTensors() as live:
        step().backward()
    model.zero_grad(set_to_none=True)
    assert tuple(live.levels) == trace_step(model, 3, "fp32").levels
