"""Graders of the memory exercises: they accept the library and name typical mistakes."""

from learnlib import check
from learnlib.memory.analytic import adamw_memory, block_activation_bytes


def not_implemented(*args, **kwargs):
    raise NotImplementedError("exercise: write your code here, then run the check below")


def written_out_adamw(model, policy):
    param, grad, master = {"fp32": (4, 4, 0), "autocast": (4, 4, 0), "bf16_master": (2, 2, 4)}[policy]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"parameters": param * total, "gradients": grad * trainable, "optimizer_states": (master + 8) * trainable}


def test_adamw_memory_accepts_library_and_written_out_version():
    assert check.adamw_memory(adamw_memory)
    assert check.adamw_memory(written_out_adamw)


def test_adamw_memory_names_one_moment_and_master_copy_under_autocast():
    def one_moment(model, policy):
        out = written_out_adamw(model, policy)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return {**out, "optimizer_states": out["optimizer_states"] - 4 * trainable}

    result = check.adamw_memory(one_moment)
    assert not result and "TWO fp32 moments" in result.message

    def master_copy(model, policy):
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        out = written_out_adamw(model, policy)
        return {**out, "optimizer_states": out["optimizer_states"] + 4 * trainable * (policy == "autocast")}

    result = check.adamw_memory(master_copy)
    assert not result and "ARE the master weights" in result.message


def test_block_activation_bytes_accepts_library():
    assert check.block_activation_bytes(block_activation_bytes)


def test_block_activation_bytes_names_missing_scores_and_single_mlp_hidden():
    def no_scores(b, n, d, h, ratio, backend):
        return block_activation_bytes(b, n, d, h, ratio, "sdpa") - 4 * b * h * n

    result = check.block_activation_bytes(no_scores)
    assert not result and "attention-score matrix is missing" in result.message

    def hidden_once(b, n, d, h, ratio, backend):
        return block_activation_bytes(b, n, d, h, ratio, backend) - 4 * b * n * int(d * ratio)

    result = check.block_activation_bytes(hidden_once)
    assert not result and "counted once" in result.message and "GELU" in result.message


def test_stubs_fail_cleanly():
    for grader in (check.adamw_memory, check.block_activation_bytes):
        result = grader(not_implemented)
        assert not result and "not implemented yet" in result.message


# --------------------------------------------------------------------------- wrong answers a learner wrote
def test_adamw_memory_rejects_counting_through_state_dict():
    def through_state_dict(model, policy):
        out = written_out_adamw(model, policy)
        param = {"fp32": 4, "autocast": 4, "bf16_master": 2}[policy]
        return {**out, "parameters": param * sum(v.numel() for v in model.state_dict().values())}

    result = check.adamw_memory(through_state_dict)
    assert not result and "state_dict() also holds buffers" in result.message


def test_adamw_memory_rejects_a_tied_weight_counted_twice():
    def per_module(model, policy):
        param, grad, master = {"fp32": (4, 4, 0), "autocast": (4, 4, 0), "bf16_master": (2, 2, 4)}[policy]
        params = [p for m in model.modules() for p in m.parameters(recurse=False)]
        trainable = sum(p.numel() for p in params if p.requires_grad)
        return {"parameters": param * sum(p.numel() for p in params), "gradients": grad * trainable,
                "optimizer_states": (master + 8) * trainable}

    result = check.adamw_memory(per_module)
    assert not result and "counted twice" in result.message


def test_adamw_memory_does_not_call_a_missing_master_copy_a_missing_moment():
    def no_master(model, policy):
        out = written_out_adamw(model, policy)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        return {**out, "optimizer_states": 8 * trainable}

    result = check.adamw_memory(no_master)
    assert not result and "TWO fp32 moments" not in result.message
    # bf16_master's 8 bytes per parameter fit both mistakes: no name, the numbers instead
    assert "bf16_master" in result.message and "expected: {" in result.message
    assert "per trainable parameter: optimizer_states 8 bytes, expected 12" in result.message


def test_adamw_memory_reports_model_and_both_values_for_an_unknown_mistake():
    def off_by_one(model, policy):
        out = written_out_adamw(model, policy)
        return {**out, "gradients": out["gradients"] + 1}

    result = check.adamw_memory(off_by_one)
    assert not result and "frozen" in result.message and "buffer elements" in result.message
    assert "expected: {" in result.message and "received: {" in result.message


def test_block_activation_bytes_rejects_a_fractional_mlp_width():
    def float_hidden(b, n, d, h, ratio, backend):
        hidden = d * ratio  # missing int(...)
        attention = h * n * (n if backend == "math" else 1)
        return 4 * b * (n * (8 * d + 2 * hidden + 4) + attention)

    result = check.block_activation_bytes(float_hidden)
    assert not result and "whole number" in result.message and "mlp_ratio 2.66667" in result.message


def test_block_activation_bytes_names_a_missing_residual_not_missing_scores():
    def no_residual(b, n, d, h, ratio, backend):
        return block_activation_bytes(b, n, d, h, ratio, backend) - 4 * b * n * d

    result = check.block_activation_bytes(no_residual)
    assert not result and "residual after attention" in result.message
    assert "score matrix is missing" not in result.message


def test_block_activation_bytes_shows_inputs_for_an_unknown_mistake():
    result = check.block_activation_bytes(lambda b, n, d, h, ratio, backend: 12345)
    assert not result and "batch " in result.message and "tokens " in result.message and "expected " in result.message
