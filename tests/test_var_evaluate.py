"""Class consistency of VAR samples: input conversion for the classifier and the bookkeeping of hits."""

import pytest
import torch
import torch.nn.functional as F

from learnlib.models import create
from learnlib.var.evaluate import class_consistency, to_classifier_input, upsample_downsample_matrix


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    vae = create("vqvae_digits").eval()
    var = create("var_digits", depth=1, embed_dim=32, num_heads=2).eval()
    return var, vae


class LabelOracle:
    """A 'classifier' that answers the class each sample was asked for (it knows the label order)."""

    def __init__(self, labels: torch.Tensor):
        self.labels, self.seen, self.inputs = labels, 0, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        batch = self.labels[self.seen:self.seen + len(x)]
        self.seen += len(x)
        return torch.nn.functional.one_hot(batch, 10).float()  # (b, 10)


def test_to_classifier_input_inverts_bilinear_upsampling_of_digits():
    small = torch.rand(3, 1, 8, 8)
    bilinear = F.interpolate(small, size=(16, 16), mode="bilinear", align_corners=False)  # as DigitsDataset(size=16)
    assert torch.allclose(to_classifier_input(bilinear), small * 2 - 1, atol=1e-5)
    blurred = to_classifier_input(bilinear, undo_upsampling=False)  # area alone: a 3-tap blur per axis
    assert (blurred - (small * 2 - 1)).abs().max() > 0.05
    assert torch.allclose(upsample_downsample_matrix(8, 2).sum(0), torch.ones(8))  # the blur keeps the mean
    nearest = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # (3, 1, 16, 16)
    assert torch.allclose(to_classifier_input(nearest, undo_upsampling=False), small * 2 - 1, atol=1e-6)
    assert to_classifier_input(torch.ones(2, 3, 16, 32)).shape == (2, 3, 8, 8)
    assert torch.equal(to_classifier_input(torch.zeros(1, 1, 16, 16)), -torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="multiples of 8"):
        to_classifier_input(torch.zeros(1, 1, 12, 12))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        to_classifier_input(torch.zeros(16, 16))


def test_oracle_classifier_scores_one_and_sees_8x8_inputs(tiny):
    var, vae = tiny
    labels = torch.arange(10).repeat_interleave(3)  # the documented order: class by class
    oracle = LabelOracle(labels)
    result = class_consistency(var, vae, oracle, samples_per_class=3, cfg=1.0, top_k=5, seed=0, batch_size=7)
    assert oracle.seen == 30 and [len(x) for x in oracle.inputs] == [7, 7, 7, 7, 2]
    assert all(x.shape[1:] == (1, 8, 8) and x.min() >= -1 and x.max() <= 1 for x in oracle.inputs)
    assert result["overall"] == 1.0 and result["per_class"] == [1.0] * 10
    assert torch.equal(result["confusion"], 3 * torch.eye(10, dtype=torch.long))


def test_constant_classifier_scores_one_tenth(tiny):
    var, vae = tiny
    result = class_consistency(var, vae, lambda x: torch.eye(10)[[4] * len(x)], samples_per_class=2, seed=1)
    assert result["overall"] == pytest.approx(0.1)
    assert result["per_class"] == [1.0 if c == 4 else 0.0 for c in range(10)]
    assert result["confusion"][:, 4].tolist() == [2] * 10 and result["confusion"].sum() == 20


def test_seeded_and_rejects_bad_classifier_output(tiny):
    var, vae = tiny
    inputs = []

    def recorder(x):
        inputs.append(x)
        return torch.zeros(len(x), 10)

    class_consistency(var, vae, recorder, samples_per_class=1, top_k=3, seed=5)
    class_consistency(var, vae, recorder, samples_per_class=1, top_k=3, seed=5)
    assert torch.equal(inputs[0], inputs[1])
    with pytest.raises(ValueError, match=r"logits \(10, 10\)"):
        class_consistency(var, vae, lambda x: torch.zeros(len(x), 12), samples_per_class=1)
