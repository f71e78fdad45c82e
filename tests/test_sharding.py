"""FSDP2 on two gloo ranks trains like one process; sharded checkpoints move between world sizes.

One process (no process group) gives the reference; two spawned CPU ranks run every sharded
scenario once and write full (gathered) states to files that the tests compare. Parity
tolerance: 1e-5 absolute on weights and AdamW moments after fp32 steps (the only difference
is the order in which the two ranks' gradients are summed); a resume in the same world size
is bit-exact.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
)
from torch.utils._pytree import tree_map

from learnlib import models
from learnlib.errors import CheckpointError
from learnlib.nn.optim import build_optimizer
from learnlib.train.checkpoint import FORMAT, atomic_save, rng_state, set_rng_state
from learnlib.train.dcp import convert_single_file, load_sharded, save_sharded
from learnlib.train.distributed import DistInfo
from learnlib.train.local_ddp import spawn_ranks
from learnlib.train.sharding import (
    accumulation_context,
    clip_grad_norm,
    transformer_blocks,
    wrap_for_training,
)

STEPS, GLOBAL_BATCH, MAX_NORM, ATOL = 6, 16, 0.5, 1e-5
CPU = torch.device("cpu")


def _model(drop_path: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return models.create("vit_digits", drop_path_rate=drop_path)


def _optimizer(model):
    optimizer = build_optimizer(model, lr=3e-3, weight_decay=0.05, betas=(0.9, 0.95), device=CPU)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 3))
    return optimizer, scheduler


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of `step`: the same on every rank and in every run."""
    gen = torch.Generator().manual_seed(100 + step)
    return torch.randn(GLOBAL_BATCH, 1, 8, 8, generator=gen), torch.randint(0, 10, (GLOBAL_BATCH,), generator=gen)


def _train(model, optimizer, scheduler, steps: range, rank: int = 0, world: int = 1, accum: int = 1) -> list[float]:
    """Steps of AdamW on this rank's slice of each global batch, split into `accum` micro-batches."""
    norms = []
    per_rank = GLOBAL_BATCH // world
    micro = per_rank // accum
    for step in steps:
        images, labels = _batch(step)
        images, labels = images[rank * per_rank:(rank + 1) * per_rank], labels[rank * per_rank:(rank + 1) * per_rank]
        for m in range(accum):
            with accumulation_context(model, is_last_micro=m == accum - 1):
                part = slice(m * micro, (m + 1) * micro)
                loss = F.cross_entropy(model(images[part]), labels[part])
                (loss / accum).backward()
        norms.append(clip_grad_norm(model, MAX_NORM))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
    return norms


def _full_state(model, optimizer) -> dict:
    """Gathered (unsharded) model and optimizer state, keyed by parameter name, on CPU (rank 0 only
    under a process group: the other ranks get empty dicts)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = {"model": get_model_state_dict(model, options=options),
             "optimizer": get_optimizer_state_dict(model, optimizer, options=options).get("state", {})}
    return tree_map(lambda value: value.clone() if isinstance(value, torch.Tensor) else value, state)  # a snapshot


def _fresh():
    model = _model()
    return model, _optimizer(model)[0]


def _extra(step: int, scheduler) -> dict:
    return {"step": step, "scheduler": scheduler.state_dict(), "rng": rng_state()}


def _resume(path, model, optimizer, scheduler) -> int:
    extra = load_sharded(path, model, optimizer)
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return extra["step"]


def _assert_states_close(a: dict, b: dict, atol: float) -> None:
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=atol, rtol=0, msg=key)
    assert a["optimizer"].keys() == b["optimizer"].keys()
    for key in a["optimizer"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(a["optimizer"][key][name], b["optimizer"][key][name], atol=atol, rtol=0,
                                       msg=f"{key} {name}")


# ---------------------------------------------------------------- the two-rank run


def _sharded(info: DistInfo, precision: str = "fp32"):
    model = wrap_for_training(_model(), "fsdp", info, precision)
    return (model, *_optimizer(model))


def _scenarios(rank: int, out: str) -> None:
    """Every two-rank scenario; rank 0 writes the gathered results to `out`."""
    info = DistInfo(rank=rank, local_rank=rank, world_size=2, device=CPU)
    results = {}
    # FSDP, 6 steps with a sharded save after step 3
    model, optimizer, scheduler = _sharded(info)
    norms = _train(model, optimizer, scheduler, range(3), rank, 2)
    results["step3"] = _full_state(model, optimizer)
    save_sharded(f"{out}/two_rank_step3", model, optimizer, _extra(3, scheduler))
    norms += _train(model, optimizer, scheduler, range(3, STEPS), rank, 2)
    results["step6"], results["norms"] = _full_state(model, optimizer), norms
    norms_all = [None, None]
    dist.all_gather_object(norms_all, norms)
    results["norms_per_rank"] = norms_all
    # FSDP, 3 steps in micro-batches of 2 x 4 per rank
    model, optimizer, scheduler = _sharded(info)
    _train(model, optimizer, scheduler, range(3), rank, 2, accum=2)
    results["accum2_step3"] = _full_state(model, optimizer)
    results["fsdp_unsynced_grads"] = _grads_after_one_micro_batch(model, rank)
    # resume 2 -> 2: rebuild, load, 3 more steps
    model, optimizer, scheduler = _sharded(info)
    step = _resume(f"{out}/two_rank_step3", model, optimizer, scheduler)
    _train(model, optimizer, scheduler, range(step, STEPS), rank, 2)
    results["resumed_step6"] = _full_state(model, optimizer)
    # 1 -> 2: the single-process save, loaded into two shards
    model, optimizer, scheduler = _sharded(info)
    _resume(f"{out}/one_rank_step3", model, optimizer, scheduler)
    results["from_one_rank"] = _full_state(model, optimizer)
    # DDP with accumulation 2, for comparison with the same reference
    model = wrap_for_training(_model(), "ddp", info)
    optimizer, scheduler = _optimizer(model)
    _train(model, optimizer, scheduler, range(3), rank, 2, accum=2)
    results["ddp_accum2_step3"] = _full_state(model, optimizer)
    results["ddp_unsynced_grads"] = _grads_after_one_micro_batch(model, rank)
    save_sharded(f"{out}/ddp_step3", model, optimizer, {})
    # bf16 mixed precision: blocks compute in bf16, sharded weights and their gradients stay fp32
    model, optimizer, scheduler = _sharded(info, "bf16")
    seen = []
    model.blocks[0].attn.qkv.register_forward_pre_hook(lambda module, args: seen.append(module.weight.dtype))
    images, labels = _batch(0)
    logits = model(images[rank * 8:(rank + 1) * 8])
    F.cross_entropy(logits, labels[rank * 8:(rank + 1) * 8]).backward()
    results["bf16"] = {"compute_dtype": seen[0], "logits_dtype": logits.dtype,
                       "param_dtypes": {p.dtype for p in model.parameters()},
                       "grad_dtypes": {p.grad.dtype for p in model.parameters()},
                       "logits": _gather_rows(logits.detach())}
    # a GradScaler (fp16's loss scaling) skips the step on every rank when one rank's shard overflows
    model, optimizer, _ = _sharded(info)
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0)
    scaler.scale(F.cross_entropy(model(images[:4]), labels[:4])).backward()
    if rank == 0:
        model.head.weight.grad.to_local().view(-1)[0] = float("inf")  # (out*in,) this rank's shard
    before = [p.to_local().clone() for p in model.parameters()]
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    stepped = any(not torch.equal(a, p.to_local()) for a, p in zip(before, model.parameters(), strict=True))
    results["scaler"] = [None, None]
    dist.all_gather_object(results["scaler"], (stepped, scaler.get_scale()))
    if rank == 0:
        torch.save(results, f"{out}/two_rank.pt")


def _grads_after_one_micro_batch(model, rank: int) -> dict:
    """Whether a non-final micro-batch left gradients in `.grad`, and whether they agree over ranks."""
    images, labels = _batch(0)
    with accumulation_context(model, is_last_micro=False):
        F.cross_entropy(model(images[rank * 4:(rank + 1) * 4]), labels[rank * 4:(rank + 1) * 4]).backward()
    grads = [p.grad for p in model.parameters()]
    present = all(g is not None for g in grads)
    same = None
    if present:
        mine = torch.cat([g.flatten() for g in grads])  # (P,)
        same = bool(torch.equal(*_gather_rows(mine[None]).unbind(0)))
    model.zero_grad(set_to_none=True)
    return {"present": present, "same_on_both_ranks": same}


def _gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return torch.cat(parts)  # (B, ...)




# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The one-process reference (6 steps, sharded save after 3), then the two-rank scenarios."""
    out = tmp_path_factory.mktemp("sharding")
    model = _model()
    optimizer, scheduler = _optimizer(model)
    norms = _train(model, optimizer, scheduler, range(3))
    one = {"step3": _full_state(model, optimizer)}
    save_sharded(out / "one_rank_step3", model, optimizer, _extra(3, scheduler))
    norms += _train(model, optimizer, scheduler, range(3, STEPS))
    one["step6"], one["norms"] = _full_state(model, optimizer), norms
    assert not dist.is_initialized()  # no group left by an earlier test: the reference is one process
    spawn_ranks(_scenarios, 2, str(out))  # a file rendezvous, and each rank leaves in a fixed order
    return out, one, torch.load(out / "two_rank.pt", weights_only=False)


# ---------------------------------------------------------------- (1) parity, clipping


def test_fsdp_two_ranks_match_one_process(runs):
    _, one, two = runs
    _assert_states_close(one["step6"], two["step6"], ATOL)
    # a parameter that moved: the comparison is not between two untouched initializations
    first = _model().state_dict()["blocks.0.attn.qkv.weight"]
    assert (two["step6"]["model"]["blocks.0.attn.qkv.weight"] - first).abs().max() > 1e-3


def test_clip_grad_norm_is_the_global_norm_on_every_rank(runs):
    _, one, two = runs
    assert all(norm > MAX_NORM for norm in one["norms"])  # clipping was active at every step
    assert two["norms_per_rank"][0] == two["norms_per_rank"][1]
    torch.testing.assert_close(torch.tensor(two["norms"]), torch.tensor(one["norms"]), rtol=1e-5, atol=0)


def test_clip_grad_norm_needs_gradients_and_a_valid_bound():
    model = _model()
    with pytest.raises(RuntimeError, match="no gradients"):
        clip_grad_norm(model, 1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_norm"):
            clip_grad_norm(model, bad)


# ---------------------------------------------------------------- (2) accumulation


def test_fsdp_accumulation_2_equals_one_double_micro_batch(runs):
    _, one, two = runs
    _assert_states_close(two["step3"], two["accum2_step3"], ATOL)
    _assert_states_close(one["step3"], two["accum2_step3"], ATOL)


def test_non_final_micro_batches_skip_the_gradient_reduction(runs):
    _, _, two = runs
    # FSDP2: no reduce-scatter, so no sharded gradient yet; DDP: local gradients that differ per rank
    assert two["fsdp_unsynced_grads"] == {"present": False, "same_on_both_ranks": None}
    assert two["ddp_unsynced_grads"] == {"present": True, "same_on_both_ranks": False}


def test_ddp_accumulation_2_matches_one_process(runs):
    _, one, two = runs
    _assert_states_close(one["step3"], two["ddp_accum2_step3"], ATOL)


# ---------------------------------------------------------------- (3) checkpoints across world sizes


def test_save_on_two_ranks_load_on_one(runs):
    out, _, two = runs
    model = _model()
    optimizer, scheduler = _optimizer(model)
    assert _resume(out / "two_rank_step3", model, optimizer, scheduler) == 3
    _assert_states_close(two["step3"], _full_state(model, optimizer), 0.0)
    assert sorted(p.name for p in (out / "two_rank_step3").iterdir()) == [".metadata", "__0_0.distcp",
                                                                            "__1_0.distcp", "extra.pt"]


def test_a_ddp_save_loads_into_a_plain_model(runs):
    out, _, two = runs
    model, optimizer = _fresh()
    load_sharded(out / "ddp_step3", model, optimizer)  # keys carry no DDP "module." prefix
    _assert_states_close(two["ddp_accum2_step3"], _full_state(model, optimizer), 0.0)


def test_save_on_one_rank_load_on_two(runs):
    _, one, two = runs
    _assert_states_close(one["step3"], two["from_one_rank"], 0.0)


# ---------------------------------------------------------------- (4) interrupt and resume


def test_resume_on_two_ranks_is_bit_exact(runs):
    _, _, two = runs
    _assert_states_close(two["step6"], two["resumed_step6"], 0.0)


def test_resume_in_one_process_is_bit_exact_with_stochastic_depth(tmp_path):
    """3 steps, save, a fresh model and optimizer, load, 3 more == 6 steps in one go (the RNG of
    stochastic depth, the scheduler and the step travel in `extra`)."""
    model = _model(drop_path=0.2)
    optimizer, scheduler = _optimizer(model)
    _train(model, optimizer, scheduler, range(STEPS))
    straight = _full_state(model, optimizer)

    model = _model(drop_path=0.2)
    optimizer, scheduler = _optimizer(model)
    _train(model, optimizer, scheduler, range(3))
    save_sharded(tmp_path / "ckpt", model, optimizer, _extra(3, scheduler))
    torch.rand(7)  # the interrupted process's RNG moves on; the resumed one must not see it
    model = _model(drop_path=0.2)
    optimizer, scheduler = _optimizer(model)
    step = _resume(tmp_path / "ckpt", model, optimizer, scheduler)
    _train(model, optimizer, scheduler, range(step, STEPS))
    _assert_states_close(straight, _full_state(model, optimizer), 0.0)


def test_a_save_replaces_the_previous_and_a_killed_swap_falls_back(tmp_path):
    model = _model()
    optimizer, scheduler = _optimizer(model)
    _train(model, optimizer, scheduler, range(1))
    save_sharded(tmp_path / "ckpt", model, optimizer, {"step": 1})
    _train(model, optimizer, scheduler, range(1, 2))
    save_sharded(tmp_path / "ckpt", model, optimizer, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging folders left
    assert load_sharded(tmp_path / "ckpt", *_fresh()) == {"step": 2}
    # a kill between the two renames: the new folder is still staged, the previous one is at .ckpt.old
    os.replace(tmp_path / "ckpt", tmp_path / ".ckpt.old")
    assert load_sharded(tmp_path / "ckpt", *_fresh()) == {"step": 2}
    # the next save first puts the previous checkpoint back, so no moment is left without one
    (tmp_path / ".ckpt.partial").mkdir()
    (tmp_path / ".ckpt.partial" / "__0_0.distcp").write_bytes(b"half")
    save_sharded(tmp_path / "ckpt", model, optimizer, {"step": 22})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert load_sharded(tmp_path / "ckpt", *_fresh()) == {"step": 22}
    # a kill during the write: the half-written staging folder leaves the checkpoint readable
    (tmp_path / ".ckpt.partial").mkdir()
    (tmp_path / ".ckpt.partial" / "__0_0.distcp").write_bytes(b"half")
    assert load_sharded(tmp_path / "ckpt", *_fresh()) == {"step": 22}
    save_sharded(tmp_path / "ckpt", model, optimizer, {"step": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert load_sharded(tmp_path / "ckpt", *_fresh()) == {"step": 3}


def test_a_single_file_checkpoint_is_refused_with_the_conversion(tmp_path):
    model = _model()
    optimizer, scheduler = _optimizer(model)
    _train(model, optimizer, scheduler, range(2))
    atomic_save({"format": FORMAT, "step": 2, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict()}, tmp_path / "last.pt")
    fresh = _model()
    fresh_optimizer, _ = _optimizer(fresh)
    with pytest.raises(CheckpointError, match="single-file learnlib checkpoint.*convert_single_file"):
        load_sharded(tmp_path / "last.pt", fresh, fresh_optimizer)
    convert_single_file(tmp_path / "last.pt", tmp_path / "converted", fresh, fresh_optimizer)
    again = _model()
    again_optimizer, _ = _optimizer(again)
    assert load_sharded(tmp_path / "converted", again, again_optimizer)["step"] == 2
    _assert_states_close(_full_state(model, optimizer), _full_state(again, again_optimizer), 0.0)


def test_incomplete_or_missing_folders_are_refused(tmp_path):
    model = _model()
    optimizer, _ = _optimizer(model)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_sharded(tmp_path / "nowhere", model, optimizer)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "__0_0.distcp").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"missing \.metadata, extra\.pt"):
        load_sharded(tmp_path / "half", model, optimizer)
    small = models.create("vit_digits", depth=1)
    save_sharded(tmp_path / "small", small, _optimizer(small)[0], {})
    with pytest.raises(CheckpointError, match="does not fit.*Missing key.*model.blocks.1"):
        load_sharded(tmp_path / "small", model, optimizer)


# ---------------------------------------------------------------- mixed precision


def test_fsdp_bf16_policy_computes_in_bf16_and_keeps_fp32_shards(runs):
    _, _, two = runs
    bf16 = two["bf16"]
    assert bf16["compute_dtype"] == torch.bfloat16 and bf16["logits_dtype"] == torch.float32
    assert bf16["param_dtypes"] == {torch.float32} and bf16["grad_dtypes"] == {torch.float32}
    images, _ = _batch(0)
    with torch.no_grad():
        reference = _model()(images)
    # bf16 keeps 8 bits of mantissa: logits agree to about 1e-2 of their scale
    assert (bf16["logits"] - reference).abs().max() < 3e-2 * reference.abs().max()
    assert (bf16["logits"] - reference).abs().max() > 0  # the compute did change precision


def test_grad_scaler_skips_the_step_on_every_rank_when_one_shard_overflows(runs):
    _, _, two = runs
    assert two["scaler"] == [(False, 8.0), (False, 8.0)]  # no rank stepped; the scale halved everywhere


@pytest.mark.gpu
def test_fsdp_fp16_policy_on_cuda():
    from learnlib.train.sharding import mixed_precision_policy

    policy = mixed_precision_policy("fp16", torch.device("cuda"))
    assert policy.param_dtype == torch.float16 and policy.reduce_dtype == torch.float32


# ---------------------------------------------------------------- (5) bad inputs


ONE = DistInfo(rank=0, local_rank=0, world_size=1, device=CPU)


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match="none, ddp, fsdp; got 'zero3'"):
        wrap_for_training(_model(), "zero3", ONE)
    with pytest.raises(ValueError, match="fp32, bf16, fp16; got 'fp8'"):
        wrap_for_training(_model(), "none", ONE, "fp8")


def test_fsdp_without_a_process_group_says_how_to_launch():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="world_size 1.*torchrun --nproc_per_node=N.*strategy=none"):
        wrap_for_training(_model(), "fsdp", ONE)
    two_without_group = DistInfo(rank=0, local_rank=0, world_size=2, device=CPU)
    with pytest.raises(ValueError, match="process group initialized: False"):
        wrap_for_training(_model(), "fsdp", two_without_group)


def test_fsdp_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16 with strategy=fsdp needs CUDA.*bf16"):
        wrap_for_training(_model(), "fsdp", DistInfo(rank=0, local_rank=0, world_size=2, device=CPU), "fp16")


def test_none_and_single_process_ddp_return_the_model_itself():
    model = _model()
    assert wrap_for_training(model, "none", ONE) is model
    assert wrap_for_training(model, "ddp", ONE) is model


def test_transformer_blocks_finds_vit_and_var_blocks_and_names_other_models():
    vit = _model()
    assert transformer_blocks(vit) == list(vit.blocks)
    var = models.create("var_digits")
    assert len(transformer_blocks(var)) == len(var.blocks) > 0
    with pytest.raises(TypeError, match="Sequential has no `blocks`"):
        transformer_blocks(nn.Sequential(nn.Linear(2, 2)))
    empty = nn.Module()
    empty.blocks = nn.ModuleList()
    with pytest.raises(ValueError, match=r"Module\.blocks is empty"):
        transformer_blocks(empty)
