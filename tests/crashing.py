"""A simulated kill for resume tests: a task's training_loss that raises at its n-th call."""

from __future__ import annotations


def crash_at_call(monkeypatch, task_cls, n: int, message: str = "simulated kill"):
    """Patch `task_cls.training_loss` to raise RuntimeError(message) at call `n`; return the original."""
    original = task_cls.training_loss
    calls = {"n": 0}

    def crashing(self, model, batch):
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError(message)
        return original(self, model, batch)

    monkeypatch.setattr(task_cls, "training_loss", crashing)
    return original
