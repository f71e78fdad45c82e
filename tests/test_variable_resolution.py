"""Variable-resolution ImageFolder: aspect-ratio buckets, one-bucket budgeted batches, a ViT trained on them."""

import numpy as np
import pytest
import torch
from crashing import crash_at_call
from PIL import Image

from learnlib.data import build_datasets
from learnlib.data.collate import stack_collate
from learnlib.data.image_folder import ImageFolder
from learnlib.data.transforms import bucket_eval_transform, bucket_train_transform
from learnlib.data.variable_resolution import ResolutionBuckets, VariableResolutionImages, bucket_shape
from learnlib.tasks import Classification
from learnlib.train import compose, fit
from learnlib.train.batching import BudgetBatchSampler
from learnlib.train.checkpoint import load_checkpoint
from learnlib.train.loader import ResumableLoader, train_batch_sampler

PATCH, MAX_PIXELS = 8, 32 * 32
ASPECTS, SCALES = (0.5, 0.75, 1.0, 4 / 3, 2.0), (1.0, 0.5)
# (width, height) of the training images -> the (height, width) of their bucket
IMAGE_SIZES = {(64, 64): (32, 32), (96, 48): (16, 40), (48, 96): (40, 16), (64, 48): (24, 32), (20, 20): (16, 16)}
PER_CLASS_AND_SIZE = 3


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        for k, (w, h) in enumerate(IMAGE_SIZES):
            for i in range(PER_CLASS_AND_SIZE):
                path = tmp_path / "train" / label / f"{k}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        (tmp_path / "val" / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "val" / label / f"{i}.png")
    return tmp_path


def buckets():
    return ResolutionBuckets(MAX_PIXELS, PATCH, ASPECTS, SCALES)


def dataset(root):
    return VariableResolutionImages(ImageFolder(root / "train"), buckets(), bucket_eval_transform)


def test_bucket_shapes_are_patch_multiples_within_the_pixel_budget():
    b = buckets()
    assert b.shapes == sorted(set(b.shapes)) and len(b.shapes) == 8  # some aspect ratios share a shape when small
    for scale, level in zip(b.scales, b.levels):
        for (h, w), aspect in zip(level, b.aspect_ratios):
            assert h % PATCH == 0 and w % PATCH == 0 and h * w <= MAX_PIXELS * scale**2
    assert bucket_shape(224 * 224, 1.0, 16) == (224, 224) and bucket_shape(224 * 224, 2.0, 16) == (144, 304)
    assert bucket_shape(10, 1.0, 16) == (16, 16)  # at least one patch


def test_images_go_to_the_nearest_aspect_ratio_at_the_largest_level_they_fill():
    b = buckets()
    for (w, h), shape in IMAGE_SIZES.items():
        assert b.shapes[b.assign(w, h)] == shape, (w, h)
    assert b.shapes[b.assign(1000, 10)] == (16, 40)  # very wide: the widest bucket
    with pytest.raises(ValueError, match="one 8x8 patch"):
        ResolutionBuckets(40, PATCH)
    with pytest.raises(ValueError, match=r"scales must be numbers in \(0, 1\]"):
        ResolutionBuckets(MAX_PIXELS, PATCH, scales=(2.0,))


def test_dataset_sizes_groups_and_item_shapes(root):
    data = dataset(root)
    assert len(data) == 2 * len(IMAGE_SIZES) * PER_CLASS_AND_SIZE
    for i, (path, label) in enumerate(data.folder.samples):
        with Image.open(path) as img:
            expected = IMAGE_SIZES[img.size]
        assert data.shapes[data.groups[i]] == expected and data.sizes[i] == expected[0] * expected[1]
        image, got_label = data[i]
        assert image.shape == (3, *expected) and got_label == label
    train = VariableResolutionImages(ImageFolder(root / "train"), buckets(), bucket_train_transform)
    image, _ = train[0]
    assert image.shape == (3, *train.shapes[train.groups[0]])


def test_stack_collate_stacks_one_shape_and_refuses_mixed_shapes():
    images, labels = stack_collate([(torch.zeros(3, 8, 16), 1), (torch.ones(3, 8, 16), 0)])
    assert images.shape == (2, 3, 8, 16) and labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"mixes image shapes \[\(3, 8, 8\), \(3, 8, 16\)\]"):
        stack_collate([(torch.zeros(3, 8, 16), 1), (torch.zeros(3, 8, 8), 0)])


BUDGET = 3 * MAX_PIXELS


def test_budget_batches_hold_one_shape_within_budget_and_every_image_once(root):
    data = dataset(root)
    loader = ResumableLoader(data, BudgetBatchSampler(data.sizes, BUDGET, groups=data.groups, seed=4), seed=4)
    sampler = loader.batch_sampler
    sampler.set_epoch(0)
    index_batches = list(sampler)
    seen = []
    for batch in index_batches:
        assert len({data.groups[i] for i in batch}) == 1
        assert sum(data.sizes[i] for i in batch) <= BUDGET
        seen += batch
    assert sorted(seen) == list(range(len(data)))  # one rank: every image exactly once
    for batch in index_batches:  # the loader stacks each of those batches
        images, labels = next(loader)
        assert images.shape == (len(batch), 3, *data.shapes[data.groups[batch[0]]])
        assert labels.tolist() == [data.targets[i] for i in batch]
    shapes = [data.shapes[data.groups[b[0]]] for b in index_batches]
    assert len(set(shapes)) == len(IMAGE_SIZES) and shapes != sorted(shapes)  # every bucket, interleaved


def test_two_ranks_are_disjoint_with_equal_steps_and_resume_mid_epoch(root):
    data = dataset(root)
    samplers = [BudgetBatchSampler(data.sizes, BUDGET, rank, 2, seed=1, groups=data.groups) for rank in (0, 1)]
    per_rank = []
    for s in samplers:
        s.set_epoch(3)
        per_rank.append(list(s))
    assert len(per_rank[0]) == len(per_rank[1]) == len(samplers[0]) > 2
    ranks = [{i for batch in batches for i in batch} for batches in per_rank]
    assert not ranks[0] & ranks[1]
    resumed = BudgetBatchSampler(data.sizes, BUDGET, 1, 2, seed=1, groups=data.groups)
    resumed.set_epoch(3, start=2)
    assert list(resumed) == per_rank[1][2:]
    samplers[0].set_epoch(4)
    assert list(samplers[0]) != per_rank[0]  # another epoch, another order


def test_the_training_loader_packs_per_bucket_and_refuses_fixed_batches(root):
    data = dataset(root)
    t = compose("vit_b16_imagenet", ["trainer.batching=budget", f"trainer.batch_budget={BUDGET}"]).trainer
    sampler = train_batch_sampler(data, t, 0, 1, seed=0)
    assert sampler.groups is not None and all(len({data.groups[i] for i in b}) == 1 for b in sampler)
    with pytest.raises(ValueError, match="5 groups .* use trainer.batching=budget"):
        train_batch_sampler(data, compose("vit_b16_imagenet").trainer, 0, 1, seed=0)


def test_builder_makes_the_variable_resolution_training_set(root):
    cfg = compose("vit_b16_imagenet", [f"data.root={root}", "data.resolution=variable", "data.image_size=32",
                                       "model.patch_size=8", f"data.aspect_ratios={list(ASPECTS)}",
                                       f"data.scales={list(SCALES)}"]).data
    train, val = build_datasets(cfg)
    assert isinstance(train, VariableResolutionImages) and train.shapes == buckets().shapes
    assert val[0][0].shape == (3, 32, 32)  # held-out images stay image_size square
    with pytest.raises(ValueError, match="data.resolution must be 'fixed' or 'variable'"):
        build_datasets(compose("vit_b16_imagenet", [f"data.root={root}", "data.resolution=any"]).data)


# --- end to end: a tiny ViT with interpolated position embeddings, budgeted one-bucket batches ---

seen_images: list[tuple[int, ...]] = []


def tiny_vit_cfg(root, run_dir, *extra):
    return compose("vit_b16_imagenet", [
        f"data.root={root}", f"run_dir={run_dir}", "data.resolution=variable", "data.image_size=32",
        f"data.aspect_ratios={list(ASPECTS)}", f"data.scales={list(SCALES)}",
        "model.img_size=32", "model.patch_size=8", "model.embed_dim=16", "model.depth=1", "model.num_heads=2",
        "model.num_classes=2", "model.dynamic_img_size=true", "model.drop_path_rate=0.0",
        "trainer.batching=budget", f"trainer.batch_budget={BUDGET}", "trainer.precision=fp32",
        "trainer.max_steps=6", "trainer.warmup_steps=1", "trainer.eval_every=3", "trainer.checkpoint_every=3",
        "trainer.num_workers=0", "trainer.device=cpu", "trainer.progress=false", "trainer.tensorboard=false",
        "trainer.plot=false", "trainer.log_every=1", *extra])


def test_fit_trains_a_vit_on_variable_resolution_batches_and_resumes_exactly(root, tmp_path, monkeypatch):
    original = Classification.training_loss

    def record(self, model, batch):
        seen_images.append(tuple(batch[0].shape))
        return original(self, model, batch)

    monkeypatch.setattr(Classification, "training_loss", record)
    seen_images.clear()
    reference = fit(tiny_vit_cfg(root, tmp_path / "ref"))
    assert reference.steps == 6 and 0.0 <= reference.metrics["val/accuracy"] <= 1.0
    assert len(seen_images) == 6 and all(b * h * w <= BUDGET for b, _, h, w in seen_images)
    assert len({(h, w) for _, _, h, w in seen_images}) > 1  # several buckets went through one model

    crash_at_call(monkeypatch, Classification, 5)  # during step 5, after the step-3 checkpoint
    with pytest.raises(RuntimeError, match="simulated kill"):
        fit(tiny_vit_cfg(root, tmp_path / "run"))
    monkeypatch.setattr(Classification, "training_loss", original)
    resumed = fit(tiny_vit_cfg(root, tmp_path / "run", "resume=true"))
    a, b = load_checkpoint(reference.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["data"] == b["data"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
