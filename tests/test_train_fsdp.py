"""The trainer under FSDP2 (2 gloo ranks): same weights as one process, exact resume from a sharded
checkpoint after a crash, activation checkpointing with unchanged gradients, clear errors."""


import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from learnlib import models
from learnlib.nn.optim import build_optimizer
from learnlib.train import ConfigError, compose, fit
from learnlib.train.checkpoint import load_checkpoint
from learnlib.train.dcp import load_sharded
from learnlib.train.local_ddp import spawn_ranks

ARGS = ["+model.drop_path_rate=0.0", "data.max_shift=0", "trainer.max_steps=6", "trainer.batch_size=32", "trainer.eval_every=3",
        "trainer.checkpoint_every=3", "trainer.warmup_steps=2", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.plot=false", "trainer.device=cpu", "trainer.num_threads=1"]



def _rank_main(rank: int, cfg_yaml: str, crash_at_call: int) -> None:
    from learnlib.tasks import Classification

    if crash_at_call:
        original, calls = Classification.training_loss, {"n": 0}

        def crashing(self, model, batch):
            calls["n"] += 1
            if calls["n"] == crash_at_call:
                raise SystemExit(3)  # both ranks stop at the same micro-batch, as a killed job would
            return original(self, model, batch)

        Classification.training_loss = crashing
    fit(OmegaConf.create(cfg_yaml))


def run_two_ranks(cfg, crash_at_call: int = 0) -> None:
    spawn_ranks(_rank_main, 2, OmegaConf.to_yaml(cfg), crash_at_call)


def sharded_weights(folder, cfg) -> dict:
    model = models.build_model(cfg)
    optimizer = build_optimizer(model, 1e-3, 0.0, (0.9, 0.999), torch.device("cpu"))
    extra = load_sharded(folder, model, optimizer)
    return extra, model.state_dict()


def test_fsdp_two_ranks_match_one_process_and_resume_exactly(tmp_path):
    single = fit(compose("vit_digits", [f"run_dir={tmp_path / 'single'}", *ARGS]))
    fsdp_cfg = compose("vit_digits", [f"run_dir={tmp_path / 'fsdp'}", "trainer.strategy=fsdp", *ARGS])
    run_two_ranks(fsdp_cfg)
    extra, sharded = sharded_weights(tmp_path / "fsdp/checkpoints/last", fsdp_cfg)
    assert extra["step"] == 6 and (tmp_path / "fsdp/checkpoints/best").is_dir()
    reference = load_checkpoint(single.checkpoint)["model"]
    for key, value in reference.items():
        torch.testing.assert_close(sharded[key], value, atol=1e-5, rtol=0, msg=key)

    # the two-rank sharded checkpoint resumes in one process (DCP loads it into the unsharded model)
    one_process = OmegaConf.merge(fsdp_cfg, {"resume": True, "trainer": {"strategy": "ddp"}})
    finished = fit(one_process)
    assert finished.already_complete and finished.steps == 6 and finished.metrics == extra["metrics"]
    longer = fit(OmegaConf.merge(one_process, {"trainer": {"max_steps": 9}}))
    single_longer = fit(compose("vit_digits", [f"run_dir={tmp_path / 'single'}", *ARGS, "resume=true",
                                               "trainer.max_steps=9"]))
    assert longer.steps == single_longer.steps == 9 and longer.checkpoint.is_dir()
    continued = sharded_weights(longer.checkpoint, fsdp_cfg)[1]
    for key, value in load_checkpoint(single_longer.checkpoint)["model"].items():
        torch.testing.assert_close(continued[key], value, atol=1e-4, rtol=0, msg=key)

    crashed_cfg = compose("vit_digits", [f"run_dir={tmp_path / 'crashed'}", "trainer.strategy=fsdp", *ARGS])
    with pytest.raises(mp.ProcessExitedException):
        run_two_ranks(crashed_cfg, crash_at_call=5)  # during step 5, after the step-3 checkpoint
    assert sharded_weights(tmp_path / "crashed/checkpoints/last", crashed_cfg)[0]["step"] == 3
    run_two_ranks(OmegaConf.merge(crashed_cfg, {"resume": True}))
    extra, resumed = sharded_weights(tmp_path / "crashed/checkpoints/last", crashed_cfg)
    assert extra["step"] == 6
    for key, value in sharded.items():
        assert torch.equal(resumed[key], value), key


def test_activation_checkpointing_keeps_the_training_run_identical(tmp_path):
    plain = fit(compose("vit_digits", [f"run_dir={tmp_path / 'plain'}", *ARGS]))
    checkpointed = fit(compose("vit_digits", [f"run_dir={tmp_path / 'ckpt'}", "trainer.activation_checkpointing=true",
                                              *ARGS]))
    a, b = load_checkpoint(plain.checkpoint)["model"], load_checkpoint(checkpointed.checkpoint)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)


def test_fsdp_in_one_process_says_how_to_launch(tmp_path):
    with pytest.raises(ConfigError, match=r"torchrun --nproc_per_node=N .*\(N >= 2\).*trainer\.strategy=ddp") as info:
        fit(compose("vit_digits", [f"run_dir={tmp_path}", "trainer.strategy=fsdp", *ARGS]))
    assert "strategy=none" not in str(info.value)  # the trainer's config has no such choice


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.strategy=zero3", "trainer.strategy must be one of ddp, fsdp"),
    ("trainer.ema_decay=0.99", "trainer.ema_decay needs trainer.strategy=ddp"),
])
def test_bad_strategy_settings(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        fit(compose("vit_digits", [f"run_dir={tmp_path}", "trainer.strategy=fsdp", *ARGS, override]))


def test_activation_checkpointing_needs_blocks(tmp_path):
    with pytest.raises(ValueError, match="non-empty `.blocks`"):
        fit(compose("mlp_digits", [f"run_dir={tmp_path}", "trainer.activation_checkpointing=true", *ARGS[1:]]))
