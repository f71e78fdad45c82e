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
    assert len(tables) == 4
    assert "vit_tiny_patch16_224 64px" in tables[0] and "compile off" in tables[0]
    assert "2,000 Gaussians" in tables[1]
    assert "ws 8" in tables[2] and "skipped" in tables[2]  # flash_attn needs CUDA
    assert "training memory" in tables[3] and "checkpointing" in tables[3]
    ratios = [float(line.rsplit("|", 2)[1]) for line in tables[3].splitlines()[2:]]
    assert len(ratios) == 2 and all(0.9 < r < 1.1 for r in ratios)  # estimate within 10% of the counted bytes
