"""Graders of chapter 09 (training at scale: memory).

They compare the learner's count with learnlib.memory on fresh random configurations and,
when a wrong answer matches a typical mistake exactly (one AdamW moment, bf16 moments, a
master copy under autocast, no attention-score matrix with the math backend, the MLP hidden
activations counted once...), name it.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from learnlib.check.core import Mismatch, run_check, seeded
from learnlib.check.hints import register_hints
from learnlib.memory.analytic import POLICIES
from learnlib.memory.analytic import adamw_memory as reference_adamw
from learnlib.memory.analytic import block_activation_bytes as reference_block

PARTS = ("parameters", "gradients", "optimizer_states")


HINTS = {
    "adamw_memory": (
        ("add up what training keeps per parameter: the weights, their gradients and AdamW's state; the "
         "precision policy decides the bytes of each, and frozen parameters have no gradient or state."),
        ("count trainable and frozen parameters; bytes per parameter: fp32 4, bf16 2; AdamW keeps exp_avg and "
         "exp_avg_sq in fp32.")),
    "block_activation_bytes": (
        ("walk one block's forward and list every tensor an operation saves for its backward; the attention "
         "backend decides whether the score matrix is among them."),
        ("list what each operation keeps for backward: LayerNorm (input, mean, rstd), the Linear inputs, q/k/v, "
         "softmax output (math) or logsumexp (fused), GELU's input.")),
}
register_hints(HINTS)


def _random_model(generator: torch.Generator) -> nn.Module:
    """A small MLP of random widths whose first layer is sometimes frozen."""
    widths = torch.randint(3, 40, (int(torch.randint(2, 5, (1,), generator=generator)),), generator=generator).tolist()
    layers = [nn.Linear(a, b, bias=i % 2 == 0) for i, (a, b) in enumerate(itertools.pairwise(widths))]
    model = nn.Sequential(*layers)
    if torch.rand(1, generator=generator) < 0.5:
        model[0].requires_grad_(False)
    return model


def _adamw_diagnosis(got: dict, model: nn.Module, policy: str) -> str | None:
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    param_b, grad_b, master_b, moment_b = POLICIES[policy]
    states = got["optimizer_states"]
    if n_train and states == (master_b + 4) * n_train:
        return ("the optimizer states hold 4 bytes per parameter for the moments: AdamW keeps TWO fp32 moments "
                "(exp_avg and exp_avg_sq, 8 bytes per parameter); the second moment is missing or the moments "
                "were counted in bf16")
    if n_train and states == (master_b + 2 * 2) * n_train:
        return "the AdamW moments are fp32 in every policy (4 bytes each), not bf16"
    if policy == "autocast" and states == (4 + moment_b) * n_train:
        return ("autocast keeps the parameters in fp32: they ARE the master weights; there is no separate "
                "fp32 copy in the optimizer")
    if policy == "autocast" and got["parameters"] == 2 * n_all:
        return "autocast casts weights to bf16 on the fly; the stored parameters stay fp32 (4 bytes)"
    if policy == "autocast" and got["gradients"] == 2 * n_train:
        return "the gradients of fp32 parameters are fp32 (4 bytes) under autocast"
    if policy == "bf16_master" and states == moment_b * n_train:
        return "with bf16 parameters the optimizer keeps an fp32 master copy (4 bytes per parameter) besides the moments"
    if n_train != n_all and (got["gradients"] == grad_b * n_all or states == (master_b + moment_b) * n_all):
        return "frozen parameters (requires_grad False) have no gradients and no optimizer states"
    if n_train != n_all and got["parameters"] == param_b * n_train:
        return "frozen parameters still take parameter memory"
    return None


def adamw_memory(fn) -> bool:
    """Check fn(model, policy) -> {"parameters", "gradients", "optimizer_states"} in bytes (AdamW)."""
    generator = seeded(90)

    def case(policy):
        def run():
            model = _random_model(generator)
            expected = reference_adamw(model, policy)
            got = fn(model, policy)
            if not isinstance(got, dict) or set(got) != set(PARTS):
                raise Mismatch(f"return a dict with the keys {list(PARTS)}, got {got!r}"[:200])
            if all(int(got[k]) == expected[k] for k in PARTS):
                return
            message = _adamw_diagnosis({k: int(got[k]) for k in PARTS}, model, policy)
            if message:
                raise Mismatch(f"policy {policy!r}: {message}")
            wrong = next(k for k in PARTS if int(got[k]) != expected[k])
            raise Mismatch(f"policy {policy!r}, {sum(p.numel() for p in model.parameters())} parameters: "
                           f"{wrong} = {int(got[wrong])} bytes, expected {expected[wrong]}")
        return run

    cases = [case(p) for p in ("fp32", "autocast", "bf16_master", "autocast", "fp32", "bf16_master", "autocast")]
    return run_check("adamw_memory", cases,
                     hint="count trainable and frozen parameters; bytes per parameter: fp32 4, bf16 2; AdamW "
                          "keeps exp_avg and exp_avg_sq in fp32.")


def _block_variants(b: int, n: int, d: int, h: int, ratio: float, backend: str) -> list[tuple[str, int]]:
    hidden = int(d * ratio)
    ref = reference_block(b, n, d, h, ratio, backend)
    scores, lse = 4 * b * h * n * n, 4 * b * h * n
    out = [(("the MLP hidden activations were counted once; fc1's output is saved for GELU's backward AND "
             "GELU's output for fc2's: count (tokens x hidden) twice"), ref - 4 * b * n * hidden),
           ("the LayerNorms also save their mean and 1/std per token (2 numbers per token per LayerNorm)",
            ref - 4 * b * n * 4)]
    if backend == "math":
        out += [(("the math backend saves the (batch, heads, tokens, tokens) softmax output: the attention-score "
                  "matrix is missing"), ref - scores),
                ("the scores are saved once (softmax's output); the scaled scores before softmax are not kept",
                 ref + scores)]
    else:
        out += [(("a fused kernel (sdpa / flash) saves no (tokens x tokens) score matrix, only one logsumexp per "
                  "query and head"), ref - lse + scores),
                ("the fused kernel also saves the logsumexp (batch x heads x tokens fp32)", ref - lse)]
    return out


def block_activation_bytes(fn) -> bool:
    """Check fn(batch, tokens, dim, heads, mlp_ratio, backend) -> fp32 bytes one ViT block saves for backward."""
    generator = seeded(91)

    def case(backend):
        def run():
            heads = int(torch.randint(1, 5, (1,), generator=generator))
            dim = heads * int(torch.randint(2, 9, (1,), generator=generator)) * 4
            b, n = int(torch.randint(1, 5, (1,), generator=generator)), int(torch.randint(3, 40, (1,), generator=generator))
            ratio = float(torch.randint(1, 5, (1,), generator=generator))
            expected = reference_block(b, n, dim, heads, ratio, backend)
            setting = f"batch {b}, tokens {n}, dim {dim}, heads {heads}, mlp_ratio {ratio:g}, backend {backend!r}"
            got = fn(b, n, dim, heads, ratio, backend)
            if not isinstance(got, (int, float)) and not (isinstance(got, torch.Tensor) and got.numel() == 1):
                raise Mismatch(f"{setting}: return a number of bytes, got {type(got).__name__}")
            got = int(got)
            if got == expected:
                return
            for message, value in _block_variants(b, n, dim, heads, ratio, backend):
                if got == value:
                    raise Mismatch(f"{setting}: {message}")
            if got * 4 == expected:
                raise Mismatch(f"{setting}: count bytes (4 per fp32 number), not elements")
            raise Mismatch(f"{setting}: got {got} bytes, expected {expected}")
        return run

    cases = [case(b) for b in ("math", "sdpa", "math", "flash_attn", "math", "sdpa")]
    return run_check("block_activation_bytes", cases,
                     hint="list what each operation keeps for backward: LayerNorm (input, mean, rstd), the Linear "
                          "inputs, q/k/v, softmax output (math) or logsumexp (fused), GELU's input.")
