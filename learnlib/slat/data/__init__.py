"""Training data of the structured-latent VAE (chapter 08).

- `dataset`: `MeshSource`, `SLatDataset`, `collate_slat` and the registered "slat" dataset builder;
- `features`: mesh -> voxels + multiview features (`preprocess_mesh`), the TRELLIS camera set;
- `projection`: patch features of rendered views -> per-voxel features;
- `extractors`: the patch-feature extractors ("patch_pool" offline, "dinov2");
- `cache`: the on-disk cache of preprocessed objects;
- `trellis`: the reader of folders written by TRELLIS's dataset_toolkits.

Nothing is imported eagerly: `import learnlib.slat.data.dataset` registers the "slat" dataset.
"""
