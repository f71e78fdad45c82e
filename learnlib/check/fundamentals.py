"""Graders of chapter 00 (PyTorch fundamentals)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from learnlib.check.core import Mismatch, assert_close, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.data.collate import pad_collate as reference_pad_collate

HINTS = {
    "pad_collate": (
        ("PyTorch has a helper that pads a list of (L_i, F) tensors to one (B, L_max, F) tensor; the mask "
        "compares each position with each sequence's length."),
        ("padded = nn.utils.rnn.pad_sequence([seq for seq, _ in items], batch_first=True); lengths = "
        "torch.tensor([len(seq) for seq, _ in items]); mask = torch.arange(L_max)[None, :] < lengths[:, None]; "
        "labels = torch.tensor([label for _, label in items]).")),
    "train_step": (
        "one step is five calls, and gradients accumulate in PyTorch until you clear them: in which order?",
        ("optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); optimizer.step(); "
        "return loss.item().")),
    "evaluate": (
        ("evaluation switches dropout off and records no autograd graph; accuracy counts over all batches "
        "before dividing."),
        ("model.eval(); with torch.no_grad(): sum (model(x).argmax(-1) == y) and len(y) over the loader; "
        "return correct / total.")),
}
register_hints(HINTS)


def _random_items(generator: torch.Generator, batch: int, features: int):
    lengths = torch.randint(1, 9, (batch,), generator=generator)
    return [(torch.randn(int(n), features, generator=generator), int(torch.randint(0, 10, (), generator=generator)))
            for n in lengths]


def pad_collate(fn) -> bool:
    """Check a collate_fn that pads variable-length sequences and returns (padded, mask, labels)."""
    generator = seeded(0)

    def case(batch, features):
        def run():
            items = _random_items(generator, batch, features)
            expected = reference_pad_collate(items)
            got = fn(items)
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                raise Mismatch(f"expected a tuple (padded, mask, labels), got {type(got).__name__}")
            for label, g, e in zip(("padded", "mask", "labels"), got, expected):
                assert_close(label, g, e)
        return run

    return run_check("pad_collate", [case(b, f) for b, f in [(1, 3), (4, 3), (7, 2), (16, 5)]])


def _tiny_model(generator: torch.Generator, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=generator)))
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 4))


def train_step(fn) -> bool:
    """Check one optimization step: zero grads, forward, loss, backward, optimizer step; returns the loss."""
    generator = seeded(1)

    def case():
        model = _tiny_model(generator)
        reference = copy.deepcopy(model)
        x = torch.randn(8, 6, generator=generator)
        y = torch.randint(0, 4, (8,), generator=generator)
        loss_fn = nn.CrossEntropyLoss()
        # stale gradients that a correct step must clear first
        for params in (model.parameters(), reference.parameters()):
            for p in params:
                p.grad = torch.ones_like(p)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
        ref_opt.zero_grad()
        expected_loss = loss_fn(reference(x), y)
        expected_loss.backward()
        ref_opt.step()
        got_loss = fn(model, (x, y), opt, loss_fn)
        assert_close("returned loss", got_loss if isinstance(got_loss, float) else float(got_loss),
                     float(expected_loss.detach()))
        for (name, p), q in zip(model.named_parameters(), reference.parameters()):
            if torch.allclose(p, q - 0.1 * torch.ones_like(q), atol=1e-6) and not torch.allclose(p, q):
                raise Mismatch(f"parameter {name} moved by the stale gradient: call optimizer.zero_grad() first")
            assert_close(f"parameter {name} after the step", p.detach(), q.detach())

    return run_check("train_step", [case] * 4)


def evaluate(fn) -> bool:
    """Check an accuracy evaluation: eval mode, no autograd graph, correct average over the loader."""
    generator = seeded(2)

    def case():
        model = _tiny_model(generator, dropout=0.5)
        data = [(torch.randn(5, 6, generator=generator), torch.randint(0, 4, (5,), generator=generator))
                for _ in range(3)]
        grad_seen = []
        handle = model.register_forward_hook(lambda *_: grad_seen.append(torch.is_grad_enabled()))
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(-1) == y).sum()) for x, y in data)
        expected = correct / sum(len(y) for _, y in data)
        model.train()
        grad_seen.clear()
        got = fn(model, data)
        handle.remove()
        if any(grad_seen):
            raise Mismatch("the model ran with autograd on: wrap evaluation in torch.no_grad()")
        assert_close("accuracy", float(got), expected, atol=1e-6)

    return run_check("evaluate", [case] * 4)
