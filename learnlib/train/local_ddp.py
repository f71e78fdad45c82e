"""Run `fit` on several local CPU processes (gloo), as torchrun would: for tests and notebooks."""

from __future__ import annotations

import os
import socket

import torch.multiprocessing as mp
from omegaconf import DictConfig, OmegaConf


def free_port() -> int:
    """A TCP port on the loopback interface that no process listens on now (for a local process group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, cfg_yaml: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size), "OMP_NUM_THREADS": "1"})
    import torch

    torch.set_num_threads(1)
    from learnlib.train.trainer import fit

    fit(OmegaConf.create(cfg_yaml))


def run_local_ddp(cfg: DictConfig, world_size: int = 2) -> None:
    """Train `cfg` with `world_size` CPU processes joined by a gloo process group."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    cfg = OmegaConf.merge(cfg, {"trainer": {"device": "cpu"}})
    mp.start_processes(_worker, args=(world_size, free_port(), OmegaConf.to_yaml(cfg)),
                       nprocs=world_size, join=True, start_method="spawn")
