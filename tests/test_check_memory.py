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
