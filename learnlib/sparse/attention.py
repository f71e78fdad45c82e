"""Self-attention restricted to groups of voxels: shifted 3D windows or Morton chunks.

Every voxel attends only to the voxels of its own group (see `windows.py` and
`serialize.py`). Backends, all computing the same thing:

- "loop": one Python iteration per group with an explicit softmax; the readable reference.
- "sdpa": groups padded to the longest one, [W, Lmax, H, D], with a key-padding mask,
  in one `torch.nn.functional.scaled_dot_product_attention` call.
- "sdpa_bucketed": groups binned by length (multiples of 16 up to 256, then 8 bins per
  doubling), padded sdpa calls per bin in blocks of at most PADDED_BLOCK_BYTES, so short
  windows do not pay for the longest one.
- "flash_attn": `flash_attn_varlen_qkvpacked_func` on the sorted voxels (CUDA only,
  fp16/bf16; fp32 inputs are computed in bf16 and cast back).

"auto" picks flash_attn on CUDA when it is installed and `CPU_DEFAULT_BACKEND`
otherwise. On CPU the bucketed sdpa won every measurement of benchmarks/bench_sparse.py
(20,464 surface voxels, 8 heads x 64, fp32, 2 threads, AMD EPYC, torch 2.13; see
benchmarks/RESULTS.md): with window 8 (448 windows, mean 46, max 103 voxels) it is 1.5x
faster than the loop, 2x faster than sdpa padded to the longest window and 3x faster than
compiled FlexAttention with a block-diagonal BlockMask; with window 4 (1,480 windows of
mean 14) it is 4x faster than the loop. Window-8 attention is bound by arithmetic and
memory traffic, not by Python: the loop already runs at about a third of the speed of
batched small matrix products on this CPU. A dense block-diagonal [N, N] mask is not
offered: at 20k voxels it has 400M entries.
