"""Gaussians to and from the standard 3DGS PLY file (learnlib.splat.ply)."""

import math

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from learnlib.models import create
from learnlib.sparse import SparseTensor
from learnlib.splat import (
    SH_C0,
    Gaussians,
    intrinsics_from_fov,
    load_ply,
    look_at,
    ply_vertices,
    read_ply_vertices,
    save_ply,
)

# The layout of the reference 3DGS implementation's point_cloud.ply at SH degree 0, written out by hand.
STANDARD_DEGREE0 = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def random_gaussians(n=40, seed=0, dtype=torch.float32, **kwargs):
    g = torch.Generator().manual_seed(seed)
    return Gaussians(raw_means=torch.rand(n, 3, generator=g, dtype=dtype) - 0.5,
                     raw_scales=torch.randn(n, 3, generator=g, dtype=dtype),
                     raw_quats=torch.randn(n, 4, generator=g, dtype=dtype),
                     raw_opacities=2 * torch.randn(n, 1, generator=g, dtype=dtype),
                     sh_dc=torch.randn(n, 3, generator=g, dtype=dtype), **kwargs)


def assert_same_gaussians(a, b, rtol=1e-6, atol=1e-7):
    """The activated values agree: means and colours exactly, the rest to float32 rounding."""
    assert torch.equal(a.means.float(), b.means.float())
    assert torch.equal(a.sh_dc.float(), b.sh_dc.float())
    torch.testing.assert_close(b.opacities.float(), a.opacities.float(), rtol=rtol, atol=atol)
    torch.testing.assert_close(b.scales.float(), a.scales.float(), rtol=rtol, atol=atol)
    torch.testing.assert_close(b.quats.float(), a.quats.float(), rtol=rtol, atol=atol)


def test_file_has_the_standard_properties_in_order(tmp_path):
    path = save_ply(tmp_path / "scene.ply", random_gaussians(7))
    data = PlyData.read(str(path))
    assert [e.name for e in data.elements] == ["vertex"] and data.elements[0].count == 7
    assert [p.name for p in data["vertex"].properties] == STANDARD_DEGREE0
    assert {p.val_dtype for p in data["vertex"].properties} == {"f4"}
    assert not data.text and data.byte_order == "<"
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex 7\n")
    assert all(np.all(data["vertex"][name] == 0) for name in ("nx", "ny", "nz"))


def test_degree_three_zero_fills_45_sh_rest_between_dc_and_opacity(tmp_path):
    path = save_ply(tmp_path / "scene.ply", random_gaussians(5), sh_degree=3)
    names = [p.name for p in PlyData.read(str(path))["vertex"].properties]
    assert names == STANDARD_DEGREE0[:9] + [f"f_rest_{i}" for i in range(45)] + STANDARD_DEGREE0[9:]
    vertices = read_ply_vertices(path)
    assert all(np.all(vertices[f"f_rest_{i}"] == 0) for i in range(45))
    assert_same_gaussians(random_gaussians(5), load_ply(path))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_is_exact_to_float32(tmp_path, dtype):
    gaussians = random_gaussians(dtype=dtype)
    path = save_ply(tmp_path / "scene.ply", gaussians)
    stored, expected = read_ply_vertices(path), ply_vertices(gaussians)
    assert stored.dtype == expected.dtype
    assert all(np.array_equal(stored[name], expected[name]) for name in STANDARD_DEGREE0)  # bit for bit
    loaded = load_ply(path)
    assert loaded.means.dtype == torch.float32
    assert_same_gaussians(gaussians, loaded)
    resaved = read_ply_vertices(save_ply(tmp_path / "again.ply", loaded))
    for name in STANDARD_DEGREE0:
        np.testing.assert_allclose(resaved[name], stored[name], rtol=1e-6, atol=1e-6)


def test_stored_values_follow_the_3dgs_activations(tmp_path):
    """Opacity as a logit, scale as a log, f_dc = (rgb - 0.5) / C0, rotation normalized wxyz."""
    tensors = {"means": torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]]),
               "scales": torch.tensor([[1.0, 1.0, 1.0], [math.e, 0.5, 2.0]]),
               "quats": torch.tensor([[2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]),
               "opacities": torch.tensor([0.5, 0.9]),
               "colors": torch.tensor([[0.5, 0.5, 0.5], [0.5 + SH_C0, 0.5 - SH_C0, 1.0]])}
    v = read_ply_vertices(save_ply(tmp_path / "two.ply", tensors))
    assert v["opacity"][0] == 0 and v["scale_0"][0] == 0 and v["scale_1"][0] == 0 and v["scale_2"][0] == 0
    assert (v["rot_0"][0], v["rot_1"][0], v["rot_2"][0], v["rot_3"][0]) == (1, 0, 0, 0)
    assert (v["f_dc_0"][0], v["f_dc_1"][0], v["f_dc_2"][0]) == (0, 0, 0)
    np.testing.assert_allclose(v["opacity"][1], math.log(0.9 / 0.1), rtol=1e-6)
    np.testing.assert_allclose([v["scale_0"][1], v["scale_1"][1], v["scale_2"][1]], [1.0, math.log(0.5), math.log(2.0)],
                               rtol=1e-6)
    np.testing.assert_allclose([v[f"rot_{i}"][1] for i in range(4)], [0.5] * 4, rtol=1e-6)
    np.testing.assert_allclose([v[f"f_dc_{i}"][1] for i in range(3)], [1.0, -1.0, 0.5 / SH_C0], rtol=1e-6)
    loaded = load_ply(tmp_path / "two.ply")
    torch.testing.assert_close(loaded.opacities, tensors["opacities"])
    torch.testing.assert_close(loaded.scales, tensors["scales"])
    torch.testing.assert_close(loaded.colors, tensors["colors"])


def test_gaussians_store_the_logit_their_sigmoid_sees(tmp_path):
    """A Gaussian built with opacity 0.5 and scale 1 stores (nearly) 0 and 0, whatever its biases."""
    one = Gaussians.from_activated(torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([[1.0, 0, 0, 0]]),
                                   torch.tensor([0.5]), torch.full((1, 3), 0.5), scaling_bias=4e-3, opacity_bias=0.1)
    v = read_ply_vertices(save_ply(tmp_path / "one.ply", one))
    assert abs(float(v["opacity"][0])) < 1e-6
    assert max(abs(float(v[f"scale_{i}"][0])) for i in range(3)) < 1e-6
    saturated = random_gaussians(3)
    saturated.raw_opacities = torch.tensor([[30.0], [-30.0], [0.0]])  # sigmoid rounds to 1 and to ~1e-13
    v = read_ply_vertices(save_ply(tmp_path / "saturated.ply", saturated))
    np.testing.assert_allclose(v["opacity"], [30.0 + math.log(1 / 9), -30.0 + math.log(1 / 9), math.log(1 / 9)],
                               rtol=1e-6)


def test_render_of_loaded_gaussians_equals_render_of_original(tmp_path):
    g = torch.Generator().manual_seed(1)
    n = 30
    gaussians = Gaussians.from_activated(torch.rand(n, 3, generator=g) - 0.5, 0.03 + 0.1 * torch.rand(n, 3, generator=g),
                                         torch.randn(n, 4, generator=g), 0.2 + 0.7 * torch.rand(n, generator=g),
                                         torch.rand(n, 3, generator=g))
    loaded = load_ply(save_ply(tmp_path / "scene.ply", gaussians))
    viewmats = look_at(torch.tensor([[0.0, -2.0, 0.5], [1.5, 1.0, 1.0]]))  # (2, 4, 4)
    Ks = intrinsics_from_fov(math.radians(40), 24, 20).expand(2, 3, 3)  # (2, 3, 3)
    kwargs = {"backend": "reference", "backgrounds": torch.ones(2, 3)}
    before, alpha_before, _ = gaussians.render(viewmats, Ks, 24, 20, **kwargs)
    after, alpha_after, _ = loaded.render(viewmats, Ks, 24, 20, **kwargs)
    assert float(alpha_before.max()) > 0.5  # the scene is in view
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    torch.testing.assert_close(alpha_after, alpha_before, rtol=0, atol=1e-5)


def test_full_size_decoder_output_round_trips(tmp_path):
    """The published decoder (32 Gaussians of 14 channels per voxel at 64^3, its biases and 3D filter)."""
    torch.manual_seed(0)
    decoder = create("slat_dec_gs_swin8_b_64l8").eval()
    assert decoder.out_layer.out_features == 448 and decoder.resolution == 64
    torch.nn.init.normal_(decoder.out_layer.weight, std=0.02)  # the zero output layer would give equal Gaussians
    coords = torch.tensor([[0, 10, 10, 10], [0, 10, 10, 11], [0, 11, 10, 10], [0, 30, 31, 32]], dtype=torch.int32)
    with torch.no_grad():
        gaussians = decoder(SparseTensor(torch.randn(4, 8), coords))[0]
    assert len(gaussians) == 4 * 32 and gaussians.opacities.std() > 0
    path = save_ply(tmp_path / "decoded.ply", gaussians)
    assert [p.name for p in PlyData.read(str(path))["vertex"].properties] == STANDARD_DEGREE0
    v = read_ply_vertices(path)
    np.testing.assert_allclose(np.exp(np.stack([v[f"scale_{i}"] for i in range(3)], 1)), gaussians.scales.numpy(),
                               rtol=1e-6)  # the activated scale, 3D filter included
    assert np.exp(np.stack([v[f"scale_{i}"] for i in range(3)])).min() > decoder.min_kernel_size
    assert_same_gaussians(gaussians, load_ply(path))
    same_parametrization = load_ply(path, scaling_bias=decoder.scaling_bias, opacity_bias=decoder.opacity_bias,
                                    min_kernel_size=decoder.min_kernel_size)
    assert_same_gaussians(gaussians, same_parametrization, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(same_parametrization.raw_opacities, gaussians.raw_opacities, rtol=0, atol=1e-5)


def test_reads_files_without_normals_and_in_double_precision(tmp_path):
    """Writers differ: gsplat's exporter omits the normals, some tools write doubles."""
    gaussians = random_gaussians(6)
    stored = ply_vertices(gaussians)
    names = [n for n in STANDARD_DEGREE0 if n not in ("nx", "ny", "nz")]
    other = np.empty(6, dtype=[(n, "<f8") for n in names])
    for n in names:
        other[n] = stored[n]
    PlyData([PlyElement.describe(other, "vertex")], text=True).write(str(tmp_path / "other.ply"))
    assert_same_gaussians(gaussians, load_ply(tmp_path / "other.ply"))


def test_nonzero_sh_rest_is_dropped_with_a_warning(tmp_path):
    stored = ply_vertices(random_gaussians(3))
    rest = np.zeros(3, dtype=stored.dtype.descr + [("f_rest_0", "<f4")])
    for n in STANDARD_DEGREE0:
        rest[n] = stored[n]
    rest["f_rest_0"] = 0.25
    PlyData([PlyElement.describe(rest, "vertex")]).write(str(tmp_path / "rest.ply"))
    with pytest.warns(UserWarning, match="f_rest"):
        load_ply(tmp_path / "rest.ply")


def test_bad_inputs_raise_clear_errors(tmp_path):
    gaussians = random_gaussians(4)
    good = {"means": gaussians.means, "scales": gaussians.scales, "quats": gaussians.quats,
            "opacities": gaussians.opacities, "colors": gaussians.colors}
    with pytest.raises(ValueError, match=r"scales must be \[4, 3\], got \[4, 2\]"):
        save_ply(tmp_path / "a.ply", {**good, "scales": good["scales"][:, :2]})
    with pytest.raises(ValueError, match=r"means must be finite.*means\[2\]"):
        save_ply(tmp_path / "a.ply", {**good, "means": good["means"].clone().index_fill_(0, torch.tensor([2]), math.nan)})
    nan_gaussians = random_gaussians(4)
    nan_gaussians.raw_scales[1, 0] = math.nan
    with pytest.raises(ValueError, match=r"raw_scales must be finite.*raw_scales\[1\]"):
        save_ply(tmp_path / "a.ply", nan_gaussians)
    with pytest.raises(ValueError, match=r"stored xyz \['x', 'y', 'z'\] must be finite.*\[0\]"):
        save_ply(tmp_path / "a.ply", {**good, "means": good["means"].double() * 1e300})  # beyond float32
    with pytest.raises(ValueError, match=r"opacities must lie strictly inside \(0, 1\)"):
        save_ply(tmp_path / "a.ply", {**good, "opacities": torch.ones(4)})
    with pytest.raises(ValueError, match="one of 'colors' or 'sh_dc'"):
        save_ply(tmp_path / "a.ply", {**good, "sh_dc": good["colors"]})
    with pytest.raises(ValueError, match=r"quats must be non-zero; row 0"):
        save_ply(tmp_path / "a.ply", {**good, "quats": torch.zeros(4, 4)})
    assert not list(tmp_path.iterdir())  # nothing half-written

    stored = ply_vertices(gaussians)
    names = [n for n in STANDARD_DEGREE0 if n not in ("opacity", "rot_3")]
    partial = np.empty(4, dtype=[(n, "<f4") for n in names])
    for n in names:
        partial[n] = stored[n]
    PlyData([PlyElement.describe(partial, "vertex")]).write(str(tmp_path / "partial.ply"))
    with pytest.raises(ValueError, match=r"lacks the 3DGS properties \['opacity', 'rot_3'\]"):
        load_ply(tmp_path / "partial.ply")
    stored["scale_1"][3] = math.nan
    PlyData([PlyElement.describe(stored, "vertex")]).write(str(tmp_path / "nan.ply"))
    with pytest.raises(ValueError, match=r"scale .* must be finite, but vertex 3"):
        load_ply(tmp_path / "nan.ply")
    PlyData([PlyElement.describe(stored, "points")]).write(str(tmp_path / "points.ply"))
    with pytest.raises(ValueError, match="no 'vertex' element"):
        load_ply(tmp_path / "points.ply")
    with pytest.raises(FileNotFoundError):
        load_ply(tmp_path / "missing.ply")


def test_save_replaces_an_existing_file_whole(tmp_path):
    path = tmp_path / "scene.ply"
    save_ply(path, random_gaussians(50))
    save_ply(path, random_gaussians(3, seed=1))
    assert len(read_ply_vertices(path)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]  # no temporary file left
