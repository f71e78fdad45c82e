"""Grader of chapter 09 (training at scale): packing samples of different sizes into budgeted batches.

The learner's `fn(sizes, order, budget)` is compared with `learnlib.train.batching.pack_greedy` on
fresh random sizes; a wrong answer that equals a typical mistake (a batch closed when exactly full,
the items sorted first, the last batch dropped, items counted instead of summed) is named.
"""

from __future__ import annotations

import torch

from learnlib.check.core import CheckResult, Mismatch, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.train.batching import pack_greedy

HINTS = {
    "pack_batches": (
        ("walk the items in the given order, keeping a running total of the current batch; close the batch "
         "only when the next item would push the total past the budget."),
        ("batches, current, total = [], [], 0; for i in order: if current and total + sizes[i] > budget: "
         "batches.append(current); current, total = [], 0; then current.append(i); total += sizes[i]; "
         "finally append the last non-empty batch.")),
}
register_hints(HINTS)


def _closed_when_full(order, sizes, budget):
    batches, current, total = [], [], 0
    for i in order:
        if current and total + sizes[i] >= budget:
            batches.append(current)
            current, total = [], 0
        current.append(i)
        total += sizes[i]
    return batches + ([current] if current else [])


def _count_items(order, sizes, budget):
    return pack_greedy(order, [1] * len(sizes), budget)


MISTAKES = {
    "a batch is closed when it would be exactly full: use `total + size > budget`, not `>=`": _closed_when_full,
    "the items were sorted by size first: keep the given (shuffled) order, it is what makes epochs differ":
        lambda order, sizes, budget: pack_greedy(sorted(order, key=lambda i: -sizes[i]), sizes, budget),
    "the last, partly filled batch is missing: append the current batch after the loop":
        lambda order, sizes, budget: pack_greedy(order, sizes, budget)[:-1],
    "the budget counts items, not their sizes: add sizes[i] to the running total":
        _count_items,
}


def pack_batches(fn) -> CheckResult:
    """Check fn(sizes, order, budget) -> list of batches (lists of item indices)."""
    generator = seeded(90)

    def case(count, budget):
        def run():
            sizes = torch.randint(1, budget + 1, (count,), generator=generator).tolist()
            order = torch.randperm(count, generator=generator).tolist()
            expected = pack_greedy(order, sizes, budget)
            got = fn(list(sizes), list(order), budget)
            if not isinstance(got, (list, tuple)) or not all(isinstance(b, (list, tuple)) for b in got):
                raise Mismatch(f"expected a list of batches (lists of indices), got {type(got).__name__}")
            got = [[int(i) for i in batch] for batch in got]
            if got == expected:
                return
            named = [message for message, wrong in MISTAKES.items()
                     if wrong(order, sizes, budget) == got and wrong(order, sizes, budget) != expected]
            where = f"sizes={sizes}, order={order}, budget={budget}"
            reason = " OR ".join(named) if named else "the batches differ from the reference"
            raise Mismatch(f"{reason}\n  inputs: {where}\n  expected: {expected}\n  received: {got}")
        return run

    cases = [case(5, 10), case(12, 20), case(40, 50), case(60, 7)]
    return run_check("pack_batches", cases)
