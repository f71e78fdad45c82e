"""Command line: `python -m learnlib.train [-m] experiment=NAME key=value ...` (torchrun-ready)."""

from __future__ import annotations

import sys

from learnlib.configs.compose import compose, list_experiments
from learnlib.errors import EXPECTED_ERRORS, ConfigError
from learnlib.train.multirun import run_sweep
from learnlib.train.sweep import MULTIRUN_FLAGS, SWEEP_DIR_KEYS, parse, sweeps_in
from learnlib.train.trainer import fit

USAGE = """usage: python -m learnlib.train [-m] [experiment=NAME] [key=value ...]

Trains an experiment of learnlib/configs/experiment/ (default: the one in config.yaml).
  -m, --multirun  one run per combination of the swept values (Hydra's grammar: key=a,b
                  'key=range(0,3)' 'key=choice(a,b)' 'experiment=glob(*_digits)'), one after the
                  other, each in <sweep folder>/<job>_<swept overrides>/; the sweep folder is
                  sweep_dir=PATH, else run_dir=PATH, else runs/multirun/<name>/<date>_<time>, and its
                  multirun.yaml lists every job's overrides, status and final metrics or error
                  (exit status 1 if any job failed)
Examples:
  python -m learnlib.train experiment=vit_digits trainer.max_steps=500
  python -m learnlib.train -m experiment=mlp_digits trainer.lr=1e-3,3e-3 seed=0,1
  torchrun --nproc_per_node=8 -m learnlib.train experiment=vit_b16_imagenet data.root=/data/imagenet
Experiments: {experiments}
"""


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit status."""
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; add resume=true to the same command to continue",
              file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE.format(experiments=", ".join(list_experiments())))
        return 0
    multirun = any(arg in MULTIRUN_FLAGS for arg in argv)
    argv = [arg for arg in argv if arg not in MULTIRUN_FLAGS]
    bad = [arg for arg in argv if "=" not in arg]
    if bad:
        print(f"error: arguments must look like key=value, got {bad}\n", file=sys.stderr)
        print(USAGE.format(experiments=", ".join(list_experiments())), file=sys.stderr)
        return 2
    if multirun:
        return run_sweep(argv)
    try:
        parse(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sweep_only = sweeps_in(argv) or [arg for arg in argv if arg.partition("=")[0] in SWEEP_DIR_KEYS]
    if sweep_only:
        print(f"error: {' '.join(sweep_only)} belongs to a sweep; add -m (--multirun) to run one job per combination",
              file=sys.stderr)
        return 2
    try:
        cfg = compose(overrides=argv)
        result = fit(cfg)
    except EXPECTED_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result.is_main:  # one summary, from rank 0
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items()))
        if result.already_complete:
            print(f"{cfg.name}: already complete at step {result.steps} (trainer.max_steps={cfg.trainer.max_steps}); "
                  f"final metrics: {metrics or 'none recorded'}; pass a larger trainer.max_steps to train on")
        else:
            print(f"{cfg.name}: {result.steps} steps in {result.seconds:.1f} s; {metrics}")
        print(f"checkpoint: {result.checkpoint}")
        print(f"curves: {result.run_dir / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
