"""Frechet distance of feature Gaussians: analytic values, symmetry, and the classifier-feature wrapper."""

import math

import pytest
import torch

from learnlib.models import create
from learnlib.var.evaluate import (
    classifier_features,
    classifier_frechet_distance,
    frechet_distance,
    label_agreement,
    random_token_images,
)
from learnlib.var.frechet import feature_statistics


def random_covariance(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_identical_gaussians_are_at_distance_zero():
    mu, cov = torch.randn(6, dtype=torch.float64), random_covariance(6, 0)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)


def test_shifted_gaussian_gives_the_squared_mean_distance():
    cov = random_covariance(5, 1)
    mu1, mu2 = torch.zeros(5, dtype=torch.float64), torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    assert frechet_distance(mu1, cov, mu2, cov) == pytest.approx(float((mu1 - mu2).square().sum()), rel=1e-9)


def test_diagonal_covariances_match_the_closed_form_and_the_distance_is_symmetric():
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    zero = torch.zeros(3)
    expected = float(((a.sqrt() - b.sqrt()) ** 2).sum())  # commuting covariances: sum (sqrt a - sqrt b)^2
    assert frechet_distance(zero, torch.diag(a), zero, torch.diag(b)) == pytest.approx(expected, rel=1e-9)
    mu1, mu2 = torch.randn(4), torch.randn(4)
    cov1, cov2 = random_covariance(4, 2), random_covariance(4, 3)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(frechet_distance(mu2, cov2, mu1, cov1), rel=1e-9)
    assert frechet_distance(mu1, cov1, mu2, cov2) > 0


def test_statistics_of_samples_converge_to_the_analytic_distance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    y = torch.randn(20000, 3, generator=g, dtype=torch.float64) * 2 + torch.tensor([1.0, 0.0, 0.0])
    # N(0, I) vs N(e1, 4 I): 1 + 3 * (2 - 1)^2 = 4
    assert frechet_distance(*feature_statistics(x), *feature_statistics(y)) == pytest.approx(4.0, rel=0.05)


def test_invalid_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(D, D\)"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(torch.zeros(1, 4))


def test_classifier_frechet_distance_uses_pre_logit_features():
    torch.manual_seed(0)
    vit = create("vit_digits").eval()
    images = torch.rand(40, 1, 8, 8) * 2 - 1
    features = classifier_features(vit, images, batch_size=16)
    with torch.no_grad():
        assert torch.allclose(vit.head(features), vit(images), atol=1e-5)  # the head's input
    assert features.shape == (40, vit.embed_dim)
    assert classifier_frechet_distance(vit, images, images) == pytest.approx(0.0, abs=1e-6)
    assert classifier_frechet_distance(vit, images, -images.flip(-1)) > 1e-3
    with pytest.raises(ValueError, match="learnlib ViT"):
        classifier_features(lambda x: x, images)


def test_label_agreement_counts_hits_per_class():
    labels = torch.tensor([0, 0, 1, 1, 2])
    answers = torch.tensor([0, 1, 1, 1, 0])
    result = label_agreement(lambda x: torch.nn.functional.one_hot(answers[x[:, 0].long()], 3).float(),
                             torch.arange(5)[:, None].float(), labels, num_classes=3, batch_size=2)
    assert result["overall"] == pytest.approx(3 / 5)
    assert result["per_class"] == pytest.approx([0.5, 1.0, 0.0])
    assert result["confusion"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert math.isnan(label_agreement(lambda x: torch.eye(3)[[0] * len(x)], torch.zeros(1, 1), torch.tensor([0]),
                                      num_classes=3)["per_class"][2])


def test_random_token_images_are_decoded_pyramids_in_unit_range():
    torch.manual_seed(0)
    vae = create("vqvae_digits").eval()
    images = random_token_images(vae, 3, seed=1)
    assert images.shape == (3, 1, 16, 16) and images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, random_token_images(vae, 3, seed=1))
    assert not torch.equal(images, random_token_images(vae, 3, seed=2))
