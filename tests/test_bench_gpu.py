"""benchmarks/bench_gpu.py runs end to end at tiny sizes on CPU (its CUDA run happens on rented GPUs)."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_benchmark_script_smoke_run():
    done = subprocess.run([sys.executable, "bench_gpu.py", "--smoke"], cwd=BENCHMARKS, capture_output=True, check=False,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tables = done.stdout.split("\n\n")
    assert len(tables) == 5
    assert "vit_tiny_patch16_224 64px" in tables[0] and "compile off" in tables[0]
    assert "2,000 Gaussians" in tables[1]
    assert "ws 8" in tables[2] and "skipped" in tables[2]  # flash_attn needs CUDA
    assert "training memory" in tables[3] and "checkpointing" in tables[3]
    ratios = [float(line.rsplit("|", 2)[1]) for line in tables[3].splitlines()[2:]]
    assert len(ratios) == 2 and all(0.9 < r < 1.1 for r in ratios)  # estimate within 10% of the counted bytes
    slat = tables[4].splitlines()
    assert "SLat VAE training step" in slat[0] and len(slat) == 4
    assert "slat_vae_tiny (slat_vae_meshes)" in slat[2] and "checkpointing off (configured)" in slat[2]
    assert "checkpointing on" in slat[3] and all("LPIPS off" in row for row in slat[2:])
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in slat[2:]]
    assert all(row[1] == "torch (reference)" for row in cells)  # no gsplat on CPU
    assert all(float(row[2]) > 0 and float(row[5]) > 0 for row in cells)  # seconds per step, estimated GiB
