"""benchmarks/bench_gpu.py (make gpu-check) runs end to end as a CPU dry run: tiny sizes, gsplat and
flash-attn through the tests' stand-ins, every table in one file (its CUDA run happens on rented GPUs)."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_benchmark_script_dry_run(tmp_path):
    done = subprocess.run([sys.executable, "bench_gpu.py", str(tmp_path), "--dry-run"], cwd=BENCHMARKS,
                          capture_output=True, check=False, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = (tmp_path / "gpu_check.md").read_text()
    assert written.startswith("# make gpu-check") and "stand-ins" in written.splitlines()[2]
    tables = written.split("\n\n")[2:]
    assert len(tables) == 6 and not any("FAILED" in t or "skipped (time budget" in t for t in tables)
    assert "vit_tiny_patch16_224 64px" in tables[0] and "compile off" in tables[0]
    raster = [cell.strip() for cell in tables[1].splitlines()[2].split("|")[1:-1]]
    assert "300 Gaussians" in raster[0] and raster[2] != "n/a" and float(raster[4]) < 1e-4  # gsplat's own layer
    attention = [cell.strip() for cell in tables[2].splitlines()[2].split("|")[1:-1]]
    assert "ws 8" in attention[0] and "skipped" not in attention[2] and float(attention[4]) < 5e-2  # flash stand-in
    assert "training memory" in tables[3] and "checkpointing" in tables[3]
    ratios = [float(line.rsplit("|", 2)[1]) for line in tables[3].splitlines()[2:]]
    assert len(ratios) == 2 and all(0.9 < r < 1.1 for r in ratios)  # estimate within 10% of the counted bytes
    slat = tables[4].splitlines()
    assert "SLat VAE training step" in slat[0] and len(slat) == 4
    assert "slat_vae_tiny (slat_vae_meshes)" in slat[2] and "checkpointing off (configured)" in slat[2]
    assert "checkpointing on" in slat[3] and all("LPIPS off" in row for row in slat[2:])
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in slat[2:]]
    assert all(row[1] == "torch (reference)" for row in cells)  # "auto" renders with torch without CUDA
    gpu_tests = tables[5].splitlines()
    assert "GPU tests" in gpu_tests[0] and "collected" in gpu_tests[2] and gpu_tests[2].endswith("| 0 |")
    assert all(float(row[2]) > 0 and float(row[5]) > 0 for row in cells)  # seconds per step, estimated GiB
