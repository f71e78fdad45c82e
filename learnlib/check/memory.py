"""Graders of chapter 09 (training at scale: memory).

They compare the learner's count with learnlib.memory on fresh random configurations (models with
buffers, tied weights and frozen layers; shapes where tokens x heads != dim; MLP ratios like 8/3) and,
when a wrong answer fits exactly one typical mistake (one AdamW moment, a master copy under autocast,
buffers counted through state_dict(), no attention-score matrix with the math backend...), name it;
otherwise the message shows the inputs, the expected and the received numbers.
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


class _TiedHead(nn.Module):
    """An embedding and an output head that share one weight (counted once by model.parameters())."""

    def __init__(self, vocab: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight


def _random_model(generator: torch.Generator, *, buffers: bool, tied: bool, frozen: bool) -> nn.Module:
    """A small MLP of random widths; with BatchNorm buffers, a tied embedding/head and a frozen first layer
    as asked, so that counting through state_dict(), counting a shared weight twice or counting frozen
    parameters each give a different number."""
    widths = torch.randint(3, 40, (int(torch.randint(2, 5, (1,), generator=generator)),), generator=generator).tolist()
    layers: list[nn.Module] = [nn.Linear(a, b, bias=i % 2 == 0) for i, (a, b) in enumerate(itertools.pairwise(widths))]
    if buffers:
        layers.insert(1, nn.BatchNorm1d(widths[1]))
    if tied:
        layers.append(_TiedHead(int(torch.randint(5, 30, (1,), generator=generator)), widths[-1]))
    model = nn.Sequential(*layers)
    if frozen:
        model[0].requires_grad_(False)
    return model


def _counts(model: nn.Module) -> dict[str, int]:
    """Parameter counts a right answer and the typical wrong ones use."""
    unique = list(model.parameters())
    repeated = [p for m in model.modules() for p in m.parameters(recurse=False)]  # a shared weight twice
    return {"trainable": sum(p.numel() for p in unique if p.requires_grad),
            "all": sum(p.numel() for p in unique),
            "trainable_repeated": sum(p.numel() for p in repeated if p.requires_grad),
            "all_repeated": sum(p.numel() for p in repeated),
            "state_dict": sum(v.numel() for v in model.state_dict().values())}


TIED = ("a shared (tied) weight was counted twice: model.parameters() yields it once, and it has one gradient "
        "and one optimizer state")


def _adamw_variants(model: nn.Module, policy: str) -> list[tuple[str, dict[str, int]]]:
    """(mistake, the parts it changes) for the typical wrong answers on this model and policy."""
    n = _counts(model)
    train, every = n["trainable"], n["all"]
    param_b, grad_b, master_b, moment_b = POLICIES[policy]
    out = [
        (("the optimizer states hold 4 bytes per parameter for the moments: AdamW keeps TWO fp32 moments "
          "(exp_avg and exp_avg_sq, 8 bytes per parameter); the second moment is missing or the moments "
          "were counted in bf16"), {"optimizer_states": (master_b + 4) * train}),
        ("with bf16 parameters the optimizer keeps an fp32 master copy (4 bytes per parameter) besides the moments",
         {"optimizer_states": moment_b * train}),
        ("frozen parameters (requires_grad False) have no gradients", {"gradients": grad_b * every}),
        ("frozen parameters (requires_grad False) have no optimizer states",
         {"optimizer_states": (master_b + moment_b) * every}),
        ("frozen parameters still take parameter memory", {"parameters": param_b * train}),
        (("state_dict() also holds buffers (BatchNorm's running statistics) and lists a shared weight under each "
          "of its names; count model.parameters(), which yields every parameter once"),
         {"parameters": param_b * n["state_dict"]}),
        (TIED, {"parameters": param_b * n["all_repeated"]}),
        (TIED, {"gradients": grad_b * n["trainable_repeated"]}),
        (TIED, {"optimizer_states": (master_b + moment_b) * n["trainable_repeated"]}),
    ]
    if policy == "autocast":
        out += [(("autocast keeps the parameters in fp32: they ARE the master weights; there is no separate "
                  "fp32 copy in the optimizer"), {"optimizer_states": (4 + moment_b) * train}),
                ("autocast casts weights to bf16 on the fly; the stored parameters stay fp32 (4 bytes)",
                 {"parameters": 2 * every}),
                ("the gradients of fp32 parameters are fp32 (4 bytes) under autocast", {"gradients": 2 * train})]
    return out


def _named_mistakes(got: dict[str, int], expected: dict[str, int], variants) -> list[str]:
    """The mistakes that explain every wrong part: a part that fits several mistakes counts as explained
    when one of them is the unique fit of another part; [] when some wrong part stays unexplained."""
    fits = {part: {message for message, changed in variants if changed.get(part, expected[part]) == got[part]}
            for part in PARTS if got[part] != expected[part]}
    named = {next(iter(f)) for f in fits.values() if len(f) == 1}
    if not all(f & named for f in fits.values()):
        return []
    return list(dict.fromkeys(message for message, _ in variants if message in named))


def _describe_model(model: nn.Module) -> str:
    n = _counts(model)
    buffers = sum(b.numel() for b in model.buffers())
    shared = n["all_repeated"] - n["all"]
    return (f"{n['all']} parameters ({n['all'] - n['trainable']} frozen), {buffers} buffer elements, "
            f"{shared} parameters shared by two modules")


def adamw_memory(fn) -> bool:
    """Check fn(model, policy) -> {"parameters", "gradients", "optimizer_states"} in bytes (AdamW).

    The test models have BatchNorm buffers, a tied embedding/head weight and frozen layers in turn; a
    mistake is named only when the wrong number fits that one mistake, otherwise the message shows the
    model, the expected and the received bytes.
    """
    generator = seeded(90)

    def case(policy, **kinds):
        def run():
            model = _random_model(generator, **kinds)
            expected = reference_adamw(model, policy)
            got = fn(model, policy)
            if not isinstance(got, dict) or set(got) != set(PARTS):
                raise Mismatch(f"return a dict with the keys {list(PARTS)}, got {got!r}"[:200])
            got = {k: int(got[k]) for k in PARTS}
            if got == expected:
                return
            setting = f"policy {policy!r}, model: {_describe_model(model)}"
            names = _named_mistakes(got, expected, _adamw_variants(model, policy))
            if names:
                raise Mismatch(f"{setting}: " + "; also ".join(names))
            train = _counts(model)["trainable"]
            lines = [f"{setting}:", f"  expected: {expected}", f"  received: {got}"]
            if train:
                lines.append(f"  per trainable parameter: optimizer_states {got['optimizer_states'] / train:.3g} bytes, "
                             f"expected {expected['optimizer_states'] / train:.3g}")
            raise Mismatch("\n".join(lines))
        return run

    cases = [case("fp32", buffers=False, tied=False, frozen=True),
             case("autocast", buffers=True, tied=False, frozen=False),
             case("bf16_master", buffers=False, tied=True, frozen=False),
             case("autocast", buffers=False, tied=True, frozen=True),
             case("fp32", buffers=True, tied=True, frozen=False),
             case("bf16_master", buffers=True, tied=False, frozen=True),
             case("autocast", buffers=True, tied=True, frozen=True)]
    return run_check("adamw_memory", cases,
                     hint="count trainable and frozen parameters; bytes per parameter: fp32 4, bf16 2; AdamW "
                          "keeps exp_avg and exp_avg_sq in fp32.")


def _block_variants(b: int, n: int, d: int, h: int, ratio: float, backend: str) -> list[tuple[str, float]]:
    hidden = int(d * ratio)
    ref = reference_block(b, n, d, h, ratio, backend)
    scores, lse = 4 * b * h * n * n, 4 * b * h * n
    out = [(("the MLP hidden activations were counted once; fc1's output is saved for GELU's backward AND "
             "GELU's output for fc2's: count (tokens x hidden) twice"), ref - 4 * b * n * hidden),
           ("the LayerNorms also save their mean and 1/std per token (2 numbers per token per LayerNorm)",
            ref - 4 * b * n * 4),
           (("the residual after attention (h = x + attention(...), the input of the second LayerNorm) is saved "
             "too: 8 x dim numbers per token, not 7"), ref - 4 * b * n * d),
           (("the MLP width is a whole number: hidden = int(dim * mlp_ratio), as nn.Linear(dim, int(dim * "
             "mlp_ratio)) builds it"), ref + 8 * b * n * (d * ratio - hidden)),
           ("count bytes (4 per fp32 number), not elements", ref / 4)]
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
    """Check fn(batch, tokens, dim, heads, mlp_ratio, backend) -> fp32 bytes one ViT block saves for backward.

    The shapes keep tokens x heads != dim and the ratios include 8/3 (a width that is not a whole
    number), so that each typical mistake gives its own count; a mistake is named only when the
    received count fits exactly one of them.
    """
    generator = seeded(91)

    def case(backend, ratio):
        def run():
            heads = int(torch.randint(1, 5, (1,), generator=generator))
            dim = heads * int(torch.randint(2, 9, (1,), generator=generator)) * 4
            if dim % 3 == 0:
                dim += 4 * heads  # dim * 8 / 3 not a whole number (dim stays a multiple of heads)
            b, n = int(torch.randint(1, 5, (1,), generator=generator)), int(torch.randint(3, 40, (1,), generator=generator))
            if n * heads == dim:
                n += 1  # tokens x heads != dim: a missing residual and missing scores differ
            expected = reference_block(b, n, dim, heads, ratio, backend)
            setting = (f"batch {b}, tokens {n}, dim {dim}, heads {heads}, mlp_ratio {ratio:.6g}, "
                       f"backend {backend!r}")
            got = fn(b, n, dim, heads, ratio, backend)
            if isinstance(got, torch.Tensor) and got.numel() == 1:
                got = got.item()
            if not isinstance(got, (int, float)):
                raise Mismatch(f"{setting}: return a number of bytes, got {type(got).__name__}")
            if got == expected:
                return
            fits = {message for message, value in _block_variants(b, n, dim, heads, ratio, backend)
                    if abs(got - value) < 0.5 and value != expected}
            if len(fits) == 1:
                raise Mismatch(f"{setting}: {fits.pop()}")
            raise Mismatch(f"{setting}: got {got:.10g} bytes, expected {expected} "
                           f"(a difference of {got - expected:+.10g} bytes)")
        return run

    cases = [case("math", 2.0), case("sdpa", 8 / 3), case("math", 3.0), case("flash_attn", 4.0),
             case("math", 8 / 3), case("sdpa", 1.5)]
    return run_check("block_activation_bytes", cases,
                     hint="list what each operation keeps for backward: LayerNorm (input, mean, rstd), the Linear "
                          "inputs, q/k/v, softmax output (math) or logsumexp (fused), GELU's input.")
