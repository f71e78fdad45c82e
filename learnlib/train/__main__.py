"""Command line: `python -m learnlib.train experiment=NAME key=value ...` (torchrun-ready)."""

from __future__ import annotations

import sys

from learnlib.train.config import compose, list_experiments
from learnlib.train.errors import CheckpointError, ConfigError, NonFiniteLossError
from learnlib.train.trainer import fit

USAGE = """usage: python -m learnlib.train [experiment=NAME] [key=value ...]

Trains an experiment of learnlib/configs/experiment/ (default: the one in config.yaml).
Examples:
  python -m learnlib.train experiment=vit_digits trainer.max_steps=500
  torchrun --nproc_per_node=8 -m learnlib.train experiment=vit_b16_imagenet data.root=/data/imagenet
Experiments: {experiments}
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE.format(experiments=", ".join(list_experiments())))
        return 0
    bad = [arg for arg in argv if "=" not in arg]
    if bad:
        print(f"error: arguments must look like key=value, got {bad}\n", file=sys.stderr)
        print(USAGE.format(experiments=", ".join(list_experiments())), file=sys.stderr)
        return 2
    try:
        cfg = compose(overrides=argv)
        result = fit(cfg)
    except (ConfigError, CheckpointError, NonFiniteLossError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result.is_main:  # one summary, from rank 0
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items()))
        print(f"{cfg.name}: {result.steps} steps in {result.seconds:.1f} s; {metrics}")
        print(f"checkpoint: {result.checkpoint}")
        print(f"curves: {result.run_dir / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
