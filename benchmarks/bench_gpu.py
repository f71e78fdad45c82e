"""Every GPU benchmark of the course in one run (the chapters' CPU benchmarks live beside it).

(a) ViT-B/16 at 224, bf16 autocast, fused AdamW, synthetic batch: training images/s, model
    FLOPs utilization (FLOPs of one step counted by torch.utils.flop_counter, divided by the
    GPU's dense bf16 peak) and peak memory, with `torch.compile` off and on.
(b) Gaussian rasterizer, 50k Gaussians, forward + backward: gsplat vs the PyTorch reference.
(c) Sparse windowed attention on surface voxels, bf16: flash-attn varlen vs the bucketed sdpa.
(d) Training memory: learnlib.memory's estimate against torch.cuda.max_memory_allocated over two
    training steps (ViT-B/16, VAR-d16, VQ-VAE ch160; bf16, AdamW; with and without checkpointing).
(e) SLat VAE, full configuration `slat_vae_swin8_b_64l8`: training step time and peak memory on CUDA
    (the `slat_vae` task's step, bf16, AdamW, checkpointing as configured and off; 4 objects x 8,192
    voxels, one view of 512 px, LPIPS off), beside learnlib.memory's voxel-budget estimate, whose
    calibration (CPU, a minute at full width) is timed in the table (benchmarks/slat_gpu_step.py).
(f) The GPU tests (`pytest -m gpu`): their pass/skip/fail summary.
Contenders whose package is missing (gsplat, flash_attn) are reported as skipped.

Every table goes to one file, OUT_DIR/gpu_check.md, rewritten after each section, so a run cut
short (a lent GPU comes with about 15 minutes in all) still leaves what it measured. Sections
share a time budget (--budget-s, 540 s by default: the whole run stays under 10 minutes on one
H100); a section that would start after the budget is listed as skipped.

    python benchmarks/bench_gpu.py OUT_DIR                    # on a CUDA machine (make gpu-check)
    python benchmarks/bench_gpu.py OUT_DIR --append-results   # ... and append the tables to RESULTS.md
    python benchmarks/bench_gpu.py OUT_DIR --dry-run          # CPU, tiny sizes, gsplat and flash-attn
                                                              # through the tests' stand-ins (make test)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_rasterizer import scene
from bench_sparse import shell_coords
from machine import append_results, cpu_model
from slat_gpu_step import bench_slat_vae
from torch.utils.flop_counter import FlopCounterMode

from learnlib import models
from learnlib.sparse import SparseTensor, partitioned_self_attention
from learnlib.sparse.windows import sparse_window_partition
from learnlib.splat import orbit_cameras, rasterize

ROOT = Path(__file__).resolve().parents[1]
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """Dense bf16 peak of the GPU (datasheet), or None when unknown (MFU is then not reported)."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int) -> float:
    """Median wall seconds of `fn` over `repeats` calls after two warm-up calls, device synchronized."""
    for _ in range(2):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_vit(device: torch.device, smoke: bool, repeats: int, peak: float | None) -> list[str]:
    name, batch, size = ("vit_tiny_patch16_224", 4, 64) if smoke else ("vit_base_patch16_224", 256, 224)
    rows = []
    for compiled in (False, True):
        if compiled and smoke:
            continue  # compiling on CPU takes minutes; the smoke run checks the eager path only
        torch.manual_seed(0)
        model = models.create(name, img_size=size).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        run = torch.compile(model) if compiled else model
        images = torch.randn(batch, 3, size, size, device=device)
        labels = torch.randint(0, 1000, (batch,), device=device)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(run(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        start = time.perf_counter()
        step()
        sync(device)
        first = time.perf_counter() - start
        with FlopCounterMode(display=False) as counter:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(images), labels)  # eager: the count does not depend on compile
            loss.backward()
        optimizer.zero_grad(set_to_none=True)
        flops = counter.get_total_flops()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = median_seconds(step, device, repeats)
        memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        mfu = f"{flops / seconds / (peak * 1e12):.1%}" if peak else "n/a (peak unknown)"
        rows.append(f"| {name} {size}px, batch {batch}, bf16, compile {'on' if compiled else 'off'} | "
                    f"{batch / seconds:,.0f} | {seconds * 1e3:.1f} | {flops / 1e9:,.1f} | {mfu} | {memory:.1f} | "
                    f"{first:.1f} |")
    header = ["| ViT training step | images/s | ms / step | GFLOP / step | MFU | peak GiB | first step s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    return header + rows


def bench_rasterizer(device: torch.device, smoke: bool, repeats: int) -> list[str]:
    n, sizes = (300, (32,)) if smoke else (50_000, (64, 256, 512))
    params = [t.detach().to(device).requires_grad_() for t in scene(n)]  # the CPU benchmark's scene
    rows = []
    for size in sizes:
        cams = orbit_cameras(torch.tensor([0.3]), torch.tensor([0.2]), radius=2.0, width=size)
        viewmats, Ks = cams.viewmats.to(device), cams.Ks.to(device)
        times, images = {}, {}
        for backend in ("torch", "gsplat"):

            def step(backend=backend) -> None:
                for p in params:
                    p.grad = None
                img, alpha, _ = rasterize(*params, viewmats, Ks, size, size, backend=backend)
                (img.sum() + alpha.sum()).backward()
                images[backend] = img.detach()

            try:
                times[backend] = median_seconds(step, device, repeats)
            except (ImportError, ValueError) as error:  # gsplat missing, or no CUDA
                times[backend] = None
                rows.append(f"| {size}x{size} | gsplat skipped: {str(error).splitlines()[0]} | | | |")
        ratio = (f"{times['torch'] / times['gsplat']:.1f}x" if times.get("gsplat") else "n/a")
        diff = ((images["torch"] - images["gsplat"]).abs().max().item() if "gsplat" in images else float("nan"))
        gsplat_ms = f"{times['gsplat'] * 1e3:.2f}" if times.get("gsplat") else "n/a"
        rows.append(f"| {size}x{size}, {n:,} Gaussians | {times['torch'] * 1e3:.2f} | {gsplat_ms} | {ratio} | "
                    f"{diff:.1e} |")
    header = ["| rasterizer fwd+bwd | torch ms | gsplat ms | gsplat speed-up | max image diff |",
              "|---|---:|---:|---:|---:|"]
    return header + rows


def bench_sparse_attention(device: torch.device, smoke: bool, repeats: int) -> list[str]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    configs = [(32, 1, 1.2)] if smoke else [(64, 2, 1.2), (128, 4, 1.5)]
    heads, dim = (2, 16) if smoke else (12, 64)
    rows = []
    for resolution, batch, thickness in configs:
        coords = shell_coords(resolution, batch, thickness).to(device)
        qkv = SparseTensor(torch.randn(coords.shape[0], 3, heads, dim, device=device, dtype=dtype), coords,
                           resolution=resolution)
        part = sparse_window_partition(qkv, 8, 0)
        times, outs = {}, {}
        for backend in ("sdpa", "flash"):
            try:
                outs[backend] = partitioned_self_attention(qkv.feats, part, backend)
                times[backend] = median_seconds(lambda b=backend: partitioned_self_attention(qkv.feats, part, b),
                                                device, repeats)
            except (ImportError, ValueError) as error:
                times[backend] = None
                note = str(error).splitlines()[0]
        flash_ms = f"{times['flash'] * 1e3:.2f}" if times["flash"] else f"skipped ({note})"
        ratio = f"{times['sdpa'] / times['flash']:.1f}x" if times["flash"] else "n/a"
        diff = ((outs["sdpa"].float() - outs["flash"].float()).abs().max().item()
                if "flash" in outs else float("nan"))
        rows.append(f"| {coords.shape[0]:,} voxels, ws 8, {part.num_groups} windows, {heads}x{dim}, {dtype} | "
                    f"{times['sdpa'] * 1e3:.2f} | {flash_ms} | {ratio} | {diff:.1e} |")
    header = ["| windowed attention | sdpa (bucketed) ms | flash varlen ms | flash speed-up | max diff |",
              "|---|---:|---:|---:|---:|"]
    return header + rows


def bench_memory(device: torch.device, smoke: bool) -> list[str]:
    """Estimated memory per device against the measured peak (CUDA) or the counted tensors (CPU smoke run)."""
    from learnlib.memory import estimate
    from learnlib.memory.measure import measure_cpu, measure_cuda

    configs = ([("vit_tiny_patch16_224", {"depth": 2, "img_size": 64}, 4, False),
                ("vit_tiny_patch16_224", {"depth": 2, "img_size": 64}, 4, True)] if smoke else
               [("vit_base_patch16_224", {}, 64, False), ("vit_base_patch16_224", {}, 64, True),
                ("var_d16", {}, 16, False), ("var_d16", {}, 16, True), ("vqvae_ch160", {}, 8, False)])
    rows = []
    for name, kwargs, batch, ckpt in configs:
        torch.manual_seed(0)
        model = models.create(name, **kwargs).to(device)
        est = estimate(model, batch, precision="bf16", activation_checkpointing=ckpt)
        if device.type == "cuda":
            measured = measure_cuda(model, batch, "bf16", activation_checkpointing=ckpt)["peak"]
        else:
            measured = measure_cpu(model, batch, "bf16", activation_checkpointing=ckpt).total
        del model
        # the CPU count holds what is saved at the end of forward, not the recompute peak of backward
        predicted = est.total if device.type == "cuda" else est.total - est.recompute_peak
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(f"| {name}, batch {batch}, bf16{', checkpointing' if ckpt else ''} | {predicted / 2**30:.3f} | "
                    f"{measured / 2**30:.3f} | {predicted / measured:.3f} |")
    what = "peak GiB (max_memory_allocated)" if device.type == "cuda" else "counted GiB (CPU tensors)"
    header = [f"| training memory | estimated GiB | {what} | estimate / measured |", "|---|---:|---:|---:|"]
    return header + rows


def gpu_tests(out_dir: Path, dry_run: bool, timeout: float) -> list[str]:
    """`pytest -m gpu` (collection only in a dry run, where CUDA is absent): its summary line and skips."""
    marked = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                    if "mark.gpu" in p.read_text())
    cmd = [sys.executable, "-m", "pytest", *marked, "-m", "gpu", "-p", "no:nbval", "-o", "addopts=", "-q", "-rs",
           "-p", "no:cacheprovider", f"--junitxml={out_dir / 'gpu_tests.xml'}"]
    if dry_run:
        cmd.append("--collect-only")
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(timeout, 30), check=False)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        summary = lines[-1] if lines else f"pytest exited {done.returncode} without output"
        code = done.returncode
    except subprocess.TimeoutExpired:
        summary, code = f"stopped after {timeout:.0f} s (time budget)", -1
    rows = [f"| {len(marked)} files | {summary.strip('= ')} | {code} |"]
    return ["| GPU tests (pytest -m gpu) | summary | exit code |", "|---|---|---:|"] + rows


def install_stand_ins():
    """Dry run: gsplat's rasterization and the flash-attn calls through the tests' CPU stand-ins."""
    import pytest

    sys.path.insert(0, str(ROOT / "tests"))
    import flash_attn_stand_in
    import gsplat_cpu

    patch = pytest.MonkeyPatch()
    gsplat_cpu.install(patch)
    flash_attn_stand_in.install(patch)
    return patch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for gpu_check.md (created)")
    parser.add_argument("--dry-run", "--smoke", dest="dry_run", action="store_true",
                        help="tiny sizes on CPU, gsplat and flash-attn through the tests' stand-ins")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=540.0, help="time for all sections together")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, when not detected")
    parser.add_argument("--append-results", action="store_true", help="also append the tables to RESULTS.md")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA device (use --dry-run to check the script on CPU)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out_file = args.out_dir / "gpu_check.md"
    start = time.perf_counter()
    repeats = 2 if args.dry_run else args.repeats
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        machine = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    else:
        machine = f"CPU dry run ({cpu_model()}): gsplat and flash-attn through the tests' stand-ins"
    patch = install_stand_ins() if args.dry_run else None
    peak = peak_tflops(device, args.peak_tflops)
    sections = [
        ("ViT training step", lambda: bench_vit(device, args.dry_run, repeats, peak)),
        ("rasterizer", lambda: bench_rasterizer(device, args.dry_run, repeats)),
        ("sparse attention", lambda: bench_sparse_attention(device, args.dry_run, repeats)),
        ("training memory", lambda: bench_memory(device, args.dry_run)),
        ("SLat VAE step", lambda: bench_slat_vae(device, args.dry_run, min(repeats, 5))),
        ("GPU tests", lambda: gpu_tests(args.out_dir, args.dry_run, args.budget_s - (time.perf_counter() - start))),
    ]
    header = (f"# make gpu-check\n\n`python benchmarks/bench_gpu.py{' --dry-run' if args.dry_run else ''}`; "
              f"median of {repeats} runs after two warm-ups. Machine: {machine}; host CPU {cpu_model()}; "
              f"torch {torch.__version__}; bf16 peak used for MFU: {peak} TFLOP/s.\n")
    tables, failed = [], 0
    try:
        for title, run in sections:
            used = time.perf_counter() - start
            if used > args.budget_s:
                tables.append(f"{title}: skipped (time budget of {args.budget_s:.0f} s used: {used:.0f} s)")
            else:
                try:
                    tables.append("\n".join(run()))
                except Exception as error:  # noqa: BLE001 (one broken section must not hide the others)
                    failed += 1
                    tables.append(f"{title}: FAILED: {type(error).__name__}: {str(error).splitlines()[0]}")
            out_file.write_text(header + "\n" + "\n\n".join(tables) + "\n")
    finally:
        if patch is not None:
            patch.undo()
    text = "\n\n".join(tables)
    print(text)
    print(f"wrote {out_file} in {time.perf_counter() - start:.0f} s")
    if args.append_results and not args.dry_run:
        append_results("GPU benchmarks", f"{header.split(chr(10), 2)[2]}\n{text}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
