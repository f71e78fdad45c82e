"""Batching variable-length items: pad to the longest and keep a mask of real positions."""

from __future__ import annotations

import torch


def pad_collate(items: list[tuple[torch.Tensor, int]], pad_value: float = 0.0):
    """Collate (sequence (L_i, F), label) pairs into (padded (B, L_max, F), mask (B, L_max), labels (B,)).

    mask[b, t] is True where position t of item b holds real data.
    """
    if not items:
        raise ValueError("pad_collate needs at least one item")
    sequences = [seq for seq, _ in items]
    features = sequences[0].shape[1:]
    for seq in sequences:
        if seq.dim() != 2 or seq.shape[1:] != features:
            raise ValueError(f"every sequence must have shape (L, {features[0]}); got {tuple(seq.shape)}")
    lengths = torch.tensor([len(seq) for seq in sequences])
    padded = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=pad_value)  # (B, L_max, F)
    mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]  # (B, L_max)
    labels = torch.tensor([int(label) for _, label in items])
    return padded, mask, labels


def stack_collate(items: list[tuple[torch.Tensor, int]]):
    """Collate (image (C, H, W), label) pairs of one shape into (images (B, C, H, W), labels (B,)).

    Images of different shapes cannot share a batch: batch them per bucket (`groups`).
    """
    if not items:
        raise ValueError("stack_collate needs at least one item")
    shapes = sorted({tuple(image.shape) for image, _ in items})
    if len(shapes) > 1:
        raise ValueError(f"a batch mixes image shapes {shapes}; items of one batch must share a shape: "
                         "batch per resolution bucket (trainer.batching=budget packs each of the dataset's "
                         "`groups` on its own)")
    images = torch.stack([image for image, _ in items])  # (B, C, H, W)
    labels = torch.tensor([int(label) for _, label in items])  # (B,)
    return images, labels
