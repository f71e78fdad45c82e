"""The training loader and its batch samplers: positions, resume, custom collate, budgets, ranks."""

import pytest
import torch
from crashing import crash_at_call
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, Dataset

from learnlib.data.registry import register_dataset
from learnlib.models import register
from learnlib.tasks import Task, register_task
from learnlib.train import compose, fit
from learnlib.train.batching import BudgetBatchSampler, FixedBatchSampler
from learnlib.train.checkpoint import load_checkpoint
from learnlib.train.loader import ResumableLoader
from learnlib.train.sampler import ResumableDistributedSampler


class Numbers(Dataset):
    """Item i is the tensor [i]."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor([i])


class Ragged(Dataset):
    """Item i is a sequence of sizes[i] copies of i; batches concatenate them (a custom collate)."""

    def __init__(self, sizes):
        self.sizes = list(sizes)

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, i):
        return torch.full((self.sizes[i],), i)

    @staticmethod
    def collate_fn(items):
        lengths = torch.tensor([len(x) for x in items])
        return torch.cat(items), lengths  # (sum N_i,), (B,)


def fixed_loader(n=50, batch=4, world=1, rank=0, accum=1, seed=0):
    sampler = ResumableDistributedSampler(n, rank, world, shuffle=True, seed=seed, global_batch=batch * world * accum)
    return ResumableLoader(Numbers(n), FixedBatchSampler(sampler, batch), seed=seed)


def take(loader, k):
    return [next(loader) for _ in range(k)]


def test_fixed_batches_equal_a_plain_dataloader_over_the_same_sampler():
    sampler = ResumableDistributedSampler(50, shuffle=True, seed=3, global_batch=8)
    plain = list(DataLoader(Numbers(50), batch_size=4, sampler=sampler))
    loader = fixed_loader(seed=3, batch=4, accum=2)
    assert loader.batches_per_epoch == len(plain) == 12  # 50 // 8 * 8 = 48 items kept
    for expected, got in zip(plain, take(loader, 12)):
        assert torch.equal(expected, got)


@pytest.mark.parametrize("stop", [1, 5, 11, 12, 13, 30])
def test_state_round_trip_resumes_with_the_same_batches(stop):
    reference = take(fixed_loader(), 40)
    first = fixed_loader()
    take(first, stop)
    state = first.state_dict()
    assert state == {"epoch": stop // 12, "batch_in_epoch": stop % 12}
    second = fixed_loader()
    second.load_state_dict(state)
    for expected, got in zip(reference[stop:], take(second, 40 - stop)):
        assert torch.equal(expected, got)


def test_epochs_reshuffle_and_cover_the_kept_items():
    loader = fixed_loader()
    epoch0 = torch.cat(take(loader, 12)).flatten()
    epoch1 = torch.cat(take(loader, 12)).flatten()
    assert len(set(epoch0.tolist())) == 48 and len(set(epoch1.tolist())) == 48
    assert not torch.equal(epoch0, epoch1)


def test_out_of_range_position_is_refused():
    loader = fixed_loader()
    with pytest.raises(ValueError, match="out of range"):
        loader.load_state_dict({"epoch": 0, "batch_in_epoch": 12})


def test_dataset_collate_is_used():
    data = Ragged([3, 1, 2, 5, 4, 2])
    sampler = ResumableDistributedSampler(len(data), shuffle=False, global_batch=2)
    loader = ResumableLoader(data, FixedBatchSampler(sampler, 2))
    values, lengths = next(loader)
    assert torch.equal(lengths, torch.tensor([3, 1]))
    assert torch.equal(values, torch.tensor([0, 0, 0, 1]))


def test_explicit_collate_wins_over_the_datasets():
    data = Ragged([1, 1, 1, 1])
    sampler = ResumableDistributedSampler(len(data), shuffle=False, global_batch=2)
    loader = ResumableLoader(data, FixedBatchSampler(sampler, 2), collate_fn=lambda items: len(items))
    assert next(loader) == 2


def epoch_batches(sampler: BudgetBatchSampler, epoch: int, start: int = 0):
    sampler.set_epoch(epoch, start)
    return list(sampler)


sizes_strategy = st.lists(st.integers(1, 40), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_strategy, budget=st.integers(40, 120), world=st.integers(1, 3), seed=st.integers(0, 5))
def test_budget_batches_fit_the_budget_and_ranks_are_disjoint(sizes, budget, world, seed):
    samplers = [BudgetBatchSampler(sizes, budget, rank, world, seed=seed, drop_last=False) for rank in range(world)]
    per_rank = [epoch_batches(s, 0) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(samplers[0])  # equal step counts
    for batches in per_rank:
        for batch in batches:
            assert sum(sizes[i] for i in batch) <= budget
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert set(seen) == set(range(len(sizes)))  # every item at least once (padding may repeat whole batches)
    unpadded = BudgetBatchSampler(sizes, budget, 0, 1, seed=seed, drop_last=False)
    assert sorted(i for batch in epoch_batches(unpadded, 0) for i in batch) == list(range(len(sizes)))


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 30), min_size=12, max_size=60), world=st.integers(1, 3))
def test_budget_batches_with_drop_last_see_each_item_at_most_once(sizes, world):
    samplers = [BudgetBatchSampler(sizes, 60, rank, world, seed=1, drop_last=True) for rank in range(world)]
    per_rank = [epoch_batches(s, 2) for s in samplers]
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert len(seen) == len(set(seen))
    assert len({len(b) for b in per_rank}) == 1


def test_budget_batches_are_deterministic_per_epoch_and_resume_mid_epoch():
    sizes = torch.randint(1, 50, (200,), generator=torch.Generator().manual_seed(0))
    a, b = BudgetBatchSampler(sizes, 150, seed=7), BudgetBatchSampler(sizes, 150, seed=7)
    assert epoch_batches(a, 3) == epoch_batches(b, 3)
    assert epoch_batches(a, 3) != epoch_batches(a, 4)
    full = epoch_batches(a, 1)
    assert epoch_batches(b, 1, start=5) == full[5:]


def test_budget_batches_respect_max_items_and_accumulation_rounds():
    sampler = BudgetBatchSampler([1] * 50, 100, world_size=2, max_items=4, multiple_of=3)
    batches = epoch_batches(sampler, 0)
    assert all(len(batch) <= 4 for batch in batches)
    assert len(sampler) % 3 == 0


def test_budget_loader_resumes_with_the_same_batches():
    data = Ragged(torch.randint(1, 9, (40,), generator=torch.Generator().manual_seed(1)).tolist())

    def loader():
        return ResumableLoader(data, BudgetBatchSampler(data.sizes, 20, seed=2))

    reference = take(loader(), 25)
    first = loader()
    take(first, 9)
    second = loader()
    second.load_state_dict(first.state_dict())
    for (v1, n1), (v2, n2) in zip(reference[9:], take(second, 16)):
        assert torch.equal(v1, v2) and torch.equal(n1, n2)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), budget=st.integers(40, 120), world=st.integers(1, 3), seed=st.integers(0, 5),
       num_groups=st.integers(1, 4), drop_last=st.booleans())
def test_grouped_budget_batches_never_mix_groups(data, budget, world, seed, num_groups, drop_last):
    sizes = data.draw(sizes_strategy)
    groups = data.draw(st.lists(st.integers(0, num_groups - 1), min_size=len(sizes), max_size=len(sizes)))
    try:
        samplers = [BudgetBatchSampler(sizes, budget, rank, world, seed=seed, drop_last=drop_last, groups=groups)
                    for rank in range(world)]
        per_rank = [epoch_batches(s, 1) for s in samplers]
    except ValueError as err:  # drop_last with fewer batches than ranks
        assert drop_last and "fewer batches than world_size" in str(err)
        return
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(samplers[0])
    for batches in per_rank:
        for batch in batches:
            assert len({groups[i] for i in batch}) == 1 and sum(sizes[i] for i in batch) <= budget
    seen = [i for batches in per_rank for batch in batches for i in batch]
    if drop_last:
        assert len(seen) == len(set(seen))
    else:
        assert set(seen) == set(range(len(sizes)))
    assert epoch_batches(samplers[0], 1, start=1) == per_rank[0][1:]


def test_one_group_packs_exactly_as_no_groups():
    sizes = torch.randint(1, 50, (120,), generator=torch.Generator().manual_seed(5))
    plain = BudgetBatchSampler(sizes, 150, world_size=2, rank=1, seed=3)
    grouped = BudgetBatchSampler(sizes, 150, world_size=2, rank=1, seed=3, groups=[7] * 120)
    assert epoch_batches(plain, 2) == epoch_batches(grouped, 2)


def test_groups_need_one_id_per_item():
    with pytest.raises(ValueError, match=r"one id per item: expected \(3,\), got \(2,\)"):
        BudgetBatchSampler([1, 2, 3], 10, groups=[0, 1])


@pytest.mark.parametrize(("sizes", "budget", "message"), [
    ([3, 99, 2], 50, "item 1 has size 99, more than the batch budget 50"),
    ([3, 0, 2], 50, "item 1 has size 0"),
    ([], 50, "empty"),
])
def test_budget_sampler_bad_input(sizes, budget, message):
    with pytest.raises(ValueError, match=message):
        BudgetBatchSampler(sizes, budget)


# --- the seam end to end: a dataset with its own collate and sizes, budgeted batches, exact resume ---

BUDGET = 40
seen_batch_sizes: list[int] = []


class RaggedTokens(Dataset):
    """Item i: a sequence of 1-12 tokens in [0, 16) and the parity of its sum."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.sizes = torch.randint(1, 13, (n,), generator=g).tolist()
        self.tokens = [torch.randint(0, 16, (s,), generator=g) for s in self.sizes]

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, i):
        return self.tokens[i], int(self.tokens[i].sum()) % 2

    @staticmethod
    def collate_fn(items):
        tokens = torch.cat([t for t, _ in items])  # (sum N_i,)
        offsets = torch.tensor([0] + [len(t) for t, _ in items[:-1]]).cumsum(0)  # (B,)
        return tokens, offsets, torch.tensor([label for _, label in items])


@register_dataset("ragged_tokens_test")
def build_ragged():
    return RaggedTokens(300, seed=0), RaggedTokens(60, seed=1)


class BagClassifier(nn.Module):
    def __init__(self, **_):
        super().__init__()
        self.bag = nn.EmbeddingBag(16, 32, mode="mean")
        self.head = nn.Linear(32, 2)

    def forward(self, tokens, offsets):
        return self.head(self.bag(tokens, offsets))  # (B, 2)


@register("bag_classifier_test")
def bag_classifier(**kwargs) -> BagClassifier:
    return BagClassifier(**kwargs)


@register_task("ragged_tokens_test")
class RaggedClassification(Task):
    metric_names = ("loss", "accuracy")

    def training_loss(self, model, batch):
        tokens, offsets, labels = batch
        seen_batch_sizes.append(len(tokens))
        return nn.functional.cross_entropy(model(tokens, offsets), labels), {}

    def eval_sums(self, model, batch):
        tokens, offsets, labels = batch
        logits = model(tokens, offsets)
        return {"loss": (nn.functional.cross_entropy(logits, labels, reduction="sum"), len(labels)),
                "accuracy": ((logits.argmax(-1) == labels).float().sum(), len(labels))}


def ragged_cfg(run_dir, *extra):
    return compose("mlp_digits", [f"run_dir={run_dir}", "data.name=ragged_tokens_test", "~data.size", "~data.max_shift",
                                  "~data.value_range", "model.name=bag_classifier_test",
                                  "task.name=ragged_tokens_test", "trainer.batching=budget",
                                  f"trainer.batch_budget={BUDGET}", "trainer.grad_accum=2", "trainer.max_steps=30",
                                  "trainer.eval_every=10", "trainer.checkpoint_every=10", "trainer.eval_batch_size=16",
                                  "trainer.progress=false", "trainer.tensorboard=false", "trainer.plot=false", *extra])


def test_budget_batching_trains_through_fit_and_resumes_exactly(tmp_path, monkeypatch):
    seen_batch_sizes.clear()
    reference = fit(ragged_cfg(tmp_path / "ref"))
    assert seen_batch_sizes and max(seen_batch_sizes) <= BUDGET and len(seen_batch_sizes) == 60
    original = crash_at_call(monkeypatch, RaggedClassification, 45)  # mid step 23, after the step-20 checkpoint
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(ragged_cfg(tmp_path / "run"))
    monkeypatch.setattr(RaggedClassification, "training_loss", original)
    resumed = fit(ragged_cfg(tmp_path / "run", "resume=true"))
    a, b = load_checkpoint(reference.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["data"] == b["data"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_budget_batching_needs_item_sizes(tmp_path):
    with pytest.raises(ValueError, match="needs a dataset with `sizes`"):
        fit(compose("mlp_digits", [f"run_dir={tmp_path}", "trainer.batching=budget", "trainer.batch_budget=64",
                                   "trainer.progress=false", "trainer.tensorboard=false", "trainer.plot=false"]))
