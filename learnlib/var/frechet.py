"""Frechet distance between two sets of images in the feature space of a classifier (an FID-style score)."""

from __future__ import annotations

import torch


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of features (N, D), N >= 2."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2, got {tuple(features.shape)}")
    x = features.detach().double().cpu()  # (N, D)
    return x.mean(dim=0), torch.cov(x.T)  # (D,), (D, D)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T  # (D, D)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Squared 2-Wasserstein distance between N(mu1, cov1) and N(mu2, cov2).

    ||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1^1/2 cov2 cov1^1/2)^1/2), in float64. The trace of the
    cross term is computed from the eigenvalues of the symmetric matrix cov1^1/2 cov2 cov1^1/2, which
    has the same spectrum as cov1 cov2, so the result is symmetric in its two arguments.
    """
    if mu1.ndim != 1:
        raise ValueError(f"expected mu1 of shape (D,), got {tuple(mu1.shape)}")
    d = mu1.shape[0]
    for name, mu, cov in (("mu1", mu1, cov1), ("mu2", mu2, cov2)):
        if mu.ndim != 1 or mu.shape[0] != d or cov.shape != (d, d):
            raise ValueError(f"expected {name} (D,) and its covariance (D, D) with D = {d}, "
                             f"got {tuple(mu.shape)} and {tuple(cov.shape)}")
    mu1, mu2, cov1, cov2 = (t.detach().double().cpu() for t in (mu1, mu2, cov1, cov2))
    root1 = _psd_sqrt(cov1)
    cross = root1 @ cov2 @ root1  # (D, D), symmetric PSD
    trace_sqrt = torch.linalg.eigvalsh((cross + cross.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt
    return max(float(value), 0.0)


@torch.no_grad()
def classifier_features(classifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Pre-logit features (N, D) of a ViT classifier for its inputs (N, C, H, W): the pooled, normed token."""
    if not hasattr(classifier, "forward_features") or not hasattr(classifier, "forward_head"):
        raise ValueError(f"classifier must be a learnlib ViT (forward_features, forward_head), "
                         f"got {type(classifier).__name__}")
    if images.ndim != 4 or batch_size < 1:
        raise ValueError(f"images must be (N, C, H, W) and batch_size >= 1, got {tuple(images.shape)}, {batch_size}")
    was_training = classifier.training
    classifier.eval()
    features = [classifier.forward_head(classifier.forward_features(images[i:i + batch_size]), pre_logits=True)
                for i in range(0, len(images), batch_size)]  # each (b, D)
    classifier.train(was_training)
    return torch.cat(features)  # (N, D)


def classifier_frechet_distance(classifier, reference: torch.Tensor, images: torch.Tensor,
                                batch_size: int = 500) -> float:
    """Frechet distance between the classifier features of `reference` and of `images` (classifier inputs).

    The FID recipe (Heusel et al., 2017) with a small task classifier in place of Inception: a Gaussian
    is fitted to each set of pre-logit features and `frechet_distance` compares the two. Values depend
    on the classifier and on the set sizes (the covariance estimate is biased upwards for few samples),
    so only numbers computed with the same classifier and sizes are comparable.
    """
    stats_ref = feature_statistics(classifier_features(classifier, reference, batch_size))
    stats = feature_statistics(classifier_features(classifier, images, batch_size))
    return frechet_distance(*stats_ref, *stats)
