"""Mixup in the classification task: the loss of a mixed batch, reproducibility, bad alpha."""

import pytest
import torch
import torch.nn.functional as F

from learnlib.tasks import Classification
from learnlib.train import compose, fit


class Recorder(torch.nn.Module):
    """A linear classifier that remembers the images it was given."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.seen = None

    def forward(self, images):
        self.seen = images
        return self.linear(images)


def test_mixup_loss_is_the_weighted_loss_of_both_labels():
    torch.manual_seed(0)
    images, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    model = Recorder()
    torch.manual_seed(1)
    loss, _ = Classification(label_smoothing=0.1, mixup=0.4).training_loss(model, (images, labels))

    torch.manual_seed(1)  # the same draws: the Beta weight, then the partner permutation
    weight = float(torch.distributions.Beta(0.4, 0.4).sample())
    partner = torch.randperm(6)
    mixed = weight * images + (1 - weight) * images[partner]
    assert 0.0 < weight < 1.0 and not torch.equal(partner, torch.arange(6))
    torch.testing.assert_close(model.seen, mixed)
    logits = model.linear(mixed)
    expected = (weight * F.cross_entropy(logits, labels, label_smoothing=0.1)
                + (1 - weight) * F.cross_entropy(logits, labels[partner], label_smoothing=0.1))
    torch.testing.assert_close(loss, expected)


def test_no_mixup_leaves_the_batch_alone():
    images, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    model = Recorder()
    loss, _ = Classification().training_loss(model, (images, labels))
    assert model.seen is images
    torch.testing.assert_close(loss, F.cross_entropy(model.linear(images), labels))


def test_negative_mixup_is_rejected_naming_the_key():
    with pytest.raises(ValueError, match="task.mixup"):
        Classification(mixup=-0.1)


def test_mixup_run_is_reproducible_and_learns(tmp_path):
    args = ["trainer.max_steps=40", "trainer.batch_size=64", "trainer.eval_every=40", "trainer.checkpoint_every=40",
            "trainer.warmup_steps=4", "trainer.progress=false", "trainer.tensorboard=false", "trainer.plot=false",
            "+task.mixup=0.2"]
    first = fit(compose("mlp_digits", [f"run_dir={tmp_path / 'a'}", *args]))
    second = fit(compose("mlp_digits", [f"run_dir={tmp_path / 'b'}", *args]))
    assert first.metrics["val/accuracy"] == second.metrics["val/accuracy"]
    assert first.metrics["val/accuracy"] > 0.5  # chance is 0.1
