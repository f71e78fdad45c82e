"""Two gloo ranks train to the same weights as one process with the same global batch."""

import torch

from learnlib.train import compose, fit
from learnlib.train.checkpoint import load_checkpoint
from learnlib.train.local_ddp import run_local_ddp

ARGS = ["model.dropout=0.0", "trainer.max_steps=6", "trainer.batch_size=32", "trainer.eval_every=3",
        "trainer.checkpoint_every=3", "trainer.progress=false", "trainer.tensorboard=false",
        "trainer.plot=false", "trainer.device=cpu"]


def test_two_rank_ddp_matches_single_process(tmp_path):
    single = fit(compose("mlp_digits", [f"run_dir={tmp_path / 'single'}", *ARGS]))
    run_local_ddp(compose("mlp_digits", [f"run_dir={tmp_path / 'ddp'}", *ARGS]), world_size=2)
    a = load_checkpoint(single.checkpoint)
    b = load_checkpoint(tmp_path / "ddp/checkpoints/last.pt")
    assert b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=1e-5, rtol=0, msg=key)
    # the held-out metrics are reduced over both ranks' shards
    assert abs(a["metrics"]["val/accuracy"] - b["metrics"]["val/accuracy"]) < 1e-6
