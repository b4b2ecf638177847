"""The conformance kit: the checks an attention must pass before it is trained on LRA, each measured against a
stated tolerance, so that padding leaks, NaN under bf16, a linear form that disagrees with its quadratic definition
and wrong gradients show up in seconds on a CPU instead of as a bad number after hours on a GPU.

The contract checked is lra.attention's: forward(x (B, L, D), mask (B, L) bool, True at real tokens) -> (B, L, D);
padded positions neither contribute nor influence real outputs (the README's "Add your own attention").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lra.attention import build_attention


@dataclass(frozen=True)
class Tolerance:
    """|actual − reference| ≤ atol + rtol·|reference| element-wise (torch.testing.assert_close's rule)."""

    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"|Δ| ≤ {self.atol:.0e} + {self.rtol:.0e}·|ref|"


CLOSE = Tolerance(rtol=1e-5, atol=1e-6)  # float32 outputs that must not move at all
BF16 = Tolerance(rtol=0.05, atol=0.05)  # bf16 autocast against float32
QUADRATIC = 1e-6  # linear vs quadratic in float64: max |Δ| / max |reference|, per output and gradient
FINITE_DIFFERENCE = 1e-4  # relative error of directional derivatives against central differences, float64
STEP = 1e-6  # the central differences' step
PADDING_LENGTHS = (13, 130)  # short, and longer than the defaults of attentions that summarise (64 landmarks)


@dataclass(frozen=True)
class Subject:
    """What is checked: an attention (a name, "package.module:Class" or a class) with its options, at a size."""

    attention: str | type[nn.Module]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    dim: int = 64
    heads: int = 2
    device: str = "cpu"
    long_length: int = 4096
    seed: int = 0

    def build(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        """A fresh module, seeded, so that every check starts from the same weights."""
        torch.manual_seed(self.seed)
        module = build_attention(self.attention, self.dim, self.heads, self.kwargs)
        return module.to(device=self.device, dtype=dtype)

    def randn(self, batch: int, length: int, dtype: torch.dtype = torch.float32, scale: float = 1.0) -> Tensor:
        return scale * torch.randn(batch, length, self.dim, device=self.device, dtype=dtype)  # (B, L, D)

    def mask(self, lengths: list[int], total: int) -> Tensor:
        """Right padding: (B, L) True at the first lengths[b] positions."""
        return torch.arange(total, device=self.device)[None, :] < torch.tensor(lengths, device=self.device)[:, None]


@dataclass(frozen=True)
class Result:
    """One check's outcome: status pass, FAIL or skip; what was measured; the tolerance; a failure's reason."""

    check: str
    status: str
    measured: str
    tolerance: str
    problem: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


class CheckFailed(Exception):
    """A check's failure: ``measured`` (what was seen) and the one-line reason."""

    def __init__(self, problem: str, measured: str = "-") -> None:
        super().__init__(problem)
        self.measured = measured


class Skip(Exception):
    """A check that does not apply to this attention (the reason is the message)."""


def max_error(actual: Tensor, reference: Tensor, tolerance: Tolerance) -> tuple[float, bool]:
    """max |actual − reference| and whether every element is within ``tolerance`` (non-finite values fail)."""
    actual, reference = actual.detach().double(), reference.detach().double()
    diff = (actual - reference).abs()
    if not (torch.isfinite(actual).all() and torch.isfinite(reference).all()):
        return float("inf"), False
    within = bool((diff <= tolerance.atol + tolerance.rtol * reference.abs()).all())
    return (diff.max().item() if diff.numel() else 0.0), within


def delta(value: float) -> str:
    return f"max |Δ| {value:.1e}"


def nonfinite_gradients(module: nn.Module, x: Tensor) -> list[str]:
    """The names of the input (`x`) and parameters whose gradient has a NaN or ±inf (missing ones are not listed)."""
    named = [("x", x), *module.named_parameters()]
    return [name for name, t in named if t.grad is not None and not torch.isfinite(t.grad).all()]


def forward_backward(module: nn.Module, x: Tensor, mask: Tensor | None) -> Tensor:
    """Output of ``module`` on a fresh leaf copy of x, after a backward of the mean square over every position."""
    x = x.detach().requires_grad_()
    module.zero_grad(set_to_none=True)
    out = module(x, mask)
    out.float().square().mean().backward()
    bad = nonfinite_gradients(module, x)
    if not torch.isfinite(out).all():
        raise CheckFailed("the output has NaN or inf", "not finite")
    if bad:
        raise CheckFailed(f"NaN or inf in the gradient of {', '.join(bad)}", "not finite")
    return out.detach()


# ---- the checks ----------------------------------------------------------------------------------------------


def check_shape_and_dtype(s: Subject) -> str:
    """(B, L, D) float32 in -> (B, L, D) float32 out; mask None means every position is real."""
    module = s.build().eval()
    x = s.randn(3, 11)
    with torch.no_grad():
        out = module(x)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise CheckFailed(f"forward returned {got}, expected a tensor of shape {tuple(x.shape)}", str(got))
        if out.dtype != x.dtype:
            raise CheckFailed(f"a float32 input gave a {out.dtype} output", str(out.dtype))
        error, ok = max_error(module(x, torch.ones(3, 11, dtype=torch.bool, device=s.device)), out, CLOSE)
    if not ok:
        raise CheckFailed("mask=None and an all-True mask give different outputs", delta(error))
    return delta(error)


def check_padding_holes(s: Subject) -> str:
    """Padded positions inside a sequence (holes) leave every real output unchanged, whatever they hold."""
    module = s.build().eval()
    worst = 0.0
    for length in PADDING_LENGTHS:
        mask = torch.ones(3, length, dtype=torch.bool, device=s.device)
        mask[0, [3, length - 5]] = False
        mask[1, 0] = False  # the first position
        mask[2, 5 : length // 2] = False  # a run
        worst = max(worst, padding_invariance(s, module, mask))
    return delta(worst)


def check_padding_right(s: Subject) -> str:
    """Right padding leaves real outputs unchanged, and a padded sequence gives what it gives alone."""
    module = s.build().eval()
    worst = 0.0
    for length in PADDING_LENGTHS:
        short = length // 3
        mask = s.mask([length, length // 2, short], length)
        worst = max(worst, padding_invariance(s, module, mask))
        x = s.randn(3, length)
        with torch.no_grad():
            error, ok = max_error(module(x, mask)[2, :short], module(x[2:3, :short], None)[0], CLOSE)
        if not ok:
            raise CheckFailed(
                "a right-padded sequence differs from the same sequence without its padding", delta(error)
            )
        worst = max(worst, error)
    return delta(worst)


def padding_invariance(s: Subject, module: nn.Module, mask: Tensor) -> float:
    """max |Δ| of the real outputs when the padded positions' inputs change (a CheckFailed beyond CLOSE)."""
    x = s.randn(*mask.shape)
    x_other = torch.where(mask[..., None], x, s.randn(*mask.shape, scale=50.0))  # only padded positions change
    with torch.no_grad():
        out, out_other = module(x, mask), module(x_other, mask)
    if not (torch.isfinite(out).all() and torch.isfinite(out_other).all()):
        raise CheckFailed("the output has NaN or inf (at real or padded positions)", "not finite")
    error, ok = max_error(out_other[mask], out[mask], CLOSE)
    if not ok:
        raise CheckFailed("real outputs change when only padded positions change: padding leaks in", delta(error))
    return error


def check_empty_row(s: Subject) -> str:
    """A sequence with no real token gives finite outputs and gradients and does not disturb the others."""
    module = s.build().eval()
    mask = s.mask([9, 4, 0], 9)
    x = s.randn(3, 9, scale=3.0)
    out = forward_backward(module, x, mask)
    with torch.no_grad():
        alone = module(x[:2], mask[:2])
    error, ok = max_error(out[:2][mask[:2]], alone[mask[:2]], CLOSE)
    if not ok:
        raise CheckFailed("an all-padding sequence in the batch changes the other sequences' outputs", delta(error))
    return f"finite; {delta(error)}"


def check_bf16(s: Subject) -> str:
    """Under bf16 autocast: a bf16 output (as torch's layers give), finite with its gradients, close to float32."""
    module = s.build().eval()
    mask = s.mask([512, 300], 512)
    x = s.randn(2, 512)
    with torch.autocast(torch.device(s.device).type, dtype=torch.bfloat16):
        out = forward_backward(module, x, mask)
    if out.dtype != torch.bfloat16:
        raise CheckFailed(f"the output under bf16 autocast is {out.dtype}, expected torch.bfloat16", str(out.dtype))
    with torch.no_grad():
        reference = module(x, mask)
    error, ok = max_error(out.float()[mask], reference[mask], BF16)
    if not ok:
        raise CheckFailed("outputs under bf16 autocast are far from float32's", delta(error))
    return f"finite; {delta(error)}"


def check_gradients(s: Subject) -> str:
    """The input and every parameter get a finite gradient that is not all zero (from a loss on real positions)."""
    module = s.build().train()
    names = [name for name, p in module.named_parameters() if p.requires_grad]
    missing, zero, x_grad = gradient_gaps(s, module)
    if x_grad is None or not torch.isfinite(x_grad).all() or not x_grad.abs().sum() > 0:
        raise CheckFailed("no finite, non-zero gradient reaches the input x", "x: none")
    if missing:
        reached = f"{len(names) - len(missing)}/{len(names)} parameters"
        raise CheckFailed(f"no gradient reaches {', '.join(missing)} (unused, detached or under no_grad)", reached)
    if zero:  # maybe a zero-initialised gate: move every parameter a little and look again
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.1 * torch.randn_like(p))
        _, zero, _ = gradient_gaps(s, module)
        if zero:
            reached = len(names) - len(zero)
            raise CheckFailed(f"the gradient of {', '.join(zero)} is all zero", f"{reached}/{len(names)} parameters")
    return f"{len(names)}/{len(names)} parameters"


def gradient_gaps(s: Subject, module: nn.Module) -> tuple[list[str], list[str], Tensor | None]:
    """(parameters without a gradient, parameters with an all-zero or non-finite one, the input's gradient)."""
    torch.manual_seed(s.seed + 1)
    mask = s.mask([16, 9], 16)
    x = s.randn(2, 16).requires_grad_()
    module.zero_grad(set_to_none=True)
    out = module(x, mask)
    (out * torch.randn_like(out))[mask].sum().backward()
    params = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    missing = [name for name, p in params if p.grad is None]
    bad = [name for name, p in params if p.grad is not None and not (torch.isfinite(p.grad).all() and p.grad.any())]
    return missing, bad, x.grad


def check_finite_differences(s: Subject) -> str:
    """In float64, directional derivatives (input and parameters together) match central differences."""
    module = s.build(torch.float64).eval()
    torch.manual_seed(s.seed + 2)
    mask = s.mask([5], 7)
    x = s.randn(1, 7, torch.float64)
    params = [p for p in module.parameters() if p.requires_grad]
    weights = torch.randn(1, 7, s.dim, device=s.device, dtype=torch.float64)

    def loss(x: Tensor) -> Tensor:
        return (module(x, mask) * weights)[mask].sum()

    x_leaf = x.clone().requires_grad_()
    grads = torch.autograd.grad(loss(x_leaf), [x_leaf, *params], allow_unused=True)
    worst = 0.0
    for _ in range(3):
        directions = [torch.randn_like(x), *(torch.randn_like(p) for p in params)]
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, directions, strict=True) if g is not None)
        with torch.no_grad():
            plus = shifted(params, directions[1:], STEP, loss, x + STEP * directions[0])
            minus = shifted(params, directions[1:], -STEP, loss, x - STEP * directions[0])
        numeric = float(plus - minus) / (2 * STEP)
        worst = max(worst, abs(analytic - numeric) / max(abs(numeric), abs(analytic), 1e-12))
    measured = f"rel err {worst:.1e}"
    if not worst <= FINITE_DIFFERENCE:
        raise CheckFailed("gradients disagree with finite differences (a wrong backward?)", measured)
    return measured


def shifted(
    params: list[Tensor], directions: list[Tensor], step: float, fn: Callable[[Tensor], Tensor], x: Tensor
) -> Tensor:
    """fn(x) with every parameter moved by step·direction, then moved back."""
    for p, d in zip(params, directions, strict=True):
        p.add_(step * d)
    try:
        return fn(x)
    finally:
        for p, d in zip(params, directions, strict=True):
            p.sub_(step * d)


def check_long(s: Subject) -> str:
    """Forward and backward at the long length (4096 by default) with padding: finite, in training mode."""
    module = s.build().train()
    length = s.long_length
    mask = s.mask([length, max(1, 3 * length // 4)], length)
    start = time.perf_counter()
    forward_backward(module, s.randn(2, length), mask)
    return f"finite; {time.perf_counter() - start:.1f} s"


def check_eval_determinism(s: Subject) -> str:
    """In eval mode the same input gives the same output twice (no dropout, no random redraws)."""
    module = s.build().eval()
    mask = s.mask([64, 40], 64)
    x = s.randn(2, 64)
    with torch.no_grad():
        first, second = module(x, mask), module(x, mask)
    error, ok = max_error(second, first, CLOSE)
    if not ok:
        raise CheckFailed("two eval-mode passes over the same input differ", delta(error))
    return delta(error)


def check_quadratic(s: Subject) -> str:
    """With attend swapped for attend_quadratic (the O(L²) reference form), outputs and all gradients agree."""
    module = s.build(torch.float64).eval()
    if not callable(getattr(module, "attend_quadratic", None)) or not callable(getattr(module, "attend", None)):
        raise Skip("no attend_quadratic (the reference form) to compare with")
    torch.manual_seed(s.seed + 3)
    mask = s.mask([9, 5], 9)
    x = s.randn(2, 9, torch.float64)
    weights = torch.randn(2, 9, s.dim, device=s.device, dtype=torch.float64)
    named = [("x", None), *((f"grad {n}", p) for n, p in module.named_parameters() if p.requires_grad)]
    calls = [0]

    def quadratic(*args: Any, **kwargs: Any) -> Tensor:
        calls[0] += 1
        return module.attend_quadratic(*args, **kwargs)

    results = []
    for form in ("linear", "quadratic"):
        x_leaf = x.clone().requires_grad_()
        with swapped_attend(module, quadratic if form == "quadratic" else None):
            out = module(x_leaf, mask)
        inputs = [x_leaf, *(p for _, p in named[1:])]
        grads = torch.autograd.grad((out * weights)[mask].sum(), inputs, allow_unused=True)
        results.append(
            [out, *(g if g is not None else torch.zeros_like(t) for g, t in zip(grads, inputs, strict=True))]
        )
    if calls[0] == 0:
        raise CheckFailed("forward never called attend, so the quadratic form could not stand in for it")
    labels = ["output", "grad x", *(name for name, _ in named[1:])]
    errors = {
        label: (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
        for label, a, b in zip(labels, *results, strict=True)
    }
    label = max(errors, key=lambda key: errors[key])
    measured = f"max |Δ|/|ref| {errors[label]:.1e} ({label})"
    if not errors[label] <= QUADRATIC:
        raise CheckFailed(f"the linear form disagrees with attend_quadratic ({label})", measured)
    return measured


@contextlib.contextmanager
def swapped_attend(module: nn.Module, attend: Callable[..., Tensor] | None) -> Iterator[None]:
    """``module.attend`` replaced by ``attend`` (None: unchanged) for the duration."""
    if attend is None:
        yield
        return
    module.attend = attend
    try:
        yield
    finally:
        del module.attend


# The checks in the order they run and print: name (formatted with the Subject's fields), the tolerance shown,
# the check.
CHECKS: list[tuple[str, str, Callable[[Subject], str]]] = [
    ("shape and dtype", str(CLOSE), check_shape_and_dtype),
    ("padding: holes", str(CLOSE), check_padding_holes),
    ("padding: right", str(CLOSE), check_padding_right),
    ("padding: all-padding row", f"finite; {CLOSE}", check_empty_row),
    ("bf16 autocast", f"finite; {BF16}", check_bf16),
    ("gradients reach every parameter", "finite, not all zero", check_gradients),
    ("gradients: finite differences", f"rel err ≤ {FINITE_DIFFERENCE:.0e} (float64)", check_finite_differences),
    ("length {long_length}", "finite", check_long),
    ("eval determinism", str(CLOSE), check_eval_determinism),
    ("linear vs quadratic", f"max |Δ|/|ref| ≤ {QUADRATIC:.0e} (float64)", check_quadratic),
]


def run_checks(subject: Subject) -> list[Result]:
    """Every check on ``subject``; an exception inside a check is that check's failure, with its message."""
    results = []
    for name, tolerance, check in CHECKS:
        name = name.format(long_length=subject.long_length)
        try:
            results.append(Result(name, "pass", check(subject), tolerance))
        except Skip as reason:
            results.append(Result(name, "skip", "-", tolerance, str(reason)))
        except CheckFailed as failure:
            results.append(Result(name, "FAIL", failure.measured, tolerance, str(failure)))
        except Exception as error:
            first_line = (str(error).strip().splitlines() or [""])[0]
            results.append(Result(name, "FAIL", "raised", tolerance, f"raised {type(error).__name__}: {first_line}"))
    return results


def table(results: list[Result]) -> str:
    """The pass/fail table, then one line per failure and skip naming the check and why."""
    rows = [("check", "result", "measured", "tolerance")] + [
        (r.check, r.status, r.measured, r.tolerance) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:3])) + "  " + row[3] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += [f"{r.status} {r.check}: {r.problem}" for r in results if r.problem]
    return "\n".join(lines)
