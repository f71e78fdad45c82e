"""Sparse voxel tensors and the layers that run on them (chapter 06).

`SparseTensor` stores features on active voxels; `window_partition` and
`serialized_partition` group voxels for `sparse_windowed_self_attention` /
`sparse_serialized_self_attention`; `SubMConv3d`, `SparseDownsample` and
`SparseUpsample` convolve and resample.

A SparseTensor holds each voxel once (`SparseTensor.coalesce` merges repeated ones), and
a tensor with 0 voxels passes through every layer here as an empty result.
"""

from learnlib.sparse.attention import (
    SparseMultiHeadAttention,
    partitioned_self_attention,
    sparse_serialized_self_attention,
    sparse_windowed_self_attention,
)
from learnlib.sparse.conv import (
    SparseDownsample,
    SparseUpsample,
    SubMConv3d,
    sparse_neighbors,
    submanifold_conv3d,
    submanifold_neighbors,
)
from learnlib.sparse.serialize import (
    morton_decode,
    morton_encode,
    serialize,
    serialized_partition,
    sparse_serialized_partition,
)
from learnlib.sparse.tensor import SparseTensor, random_coords, sparse_cat
from learnlib.sparse.windows import (
    Partition,
    WindowPartition,
    naive_window_partition,
    sparse_window_partition,
    swin_shift,
    window_partition,
)

__all__ = [
    "Partition",
    "SparseDownsample",
    "SparseMultiHeadAttention",
    "SparseTensor",
    "SparseUpsample",
    "SubMConv3d",
    "WindowPartition",
    "morton_decode",
    "morton_encode",
    "naive_window_partition",
    "partitioned_self_attention",
    "random_coords",
    "serialize",
    "serialized_partition",
    "sparse_cat",
    "sparse_neighbors",
    "sparse_serialized_partition",
    "sparse_serialized_self_attention",
    "sparse_window_partition",
    "sparse_windowed_self_attention",
    "submanifold_conv3d",
    "submanifold_neighbors",
    "swin_shift",
    "window_partition",
]
