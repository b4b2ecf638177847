"""Attention registry: config names -> attention classes, user classes by import path or entry point, and a
checked constructor.

Levels: ``base`` (the contract), ``ops`` (the linear-time kernel op and its naive reference),
``feature_maps`` (φ for kernel attention), ``kernel`` (the kernel attention layer), then one file per attention.

A name resolves, in this order, to a built-in attention (``ATTENTIONS``), to a class given by import path
("package.module:Class"), or to a name an installed package registers in the ``lra.attentions`` entry-point
group (``name = "package.module:Class"``). Built-in names always win, so installing a package cannot change
what a config means. Any class that follows the contract works: a torch.nn.Module whose constructor takes
(dim, heads, then typed options, no **kwargs) and whose forward takes (x, mask).
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from torch import nn

from lra.attention.base import Attention
from lra.attention.cosformer import CosFormerAttention
from lra.attention.feature_maps import FeatureMap
from lra.attention.hedgehog import HedgehogAttention
from lra.attention.kernel import KernelAttention
from lra.attention.linear import LinearAttention
from lra.attention.nala import NaLaAttention, NaLaReleasedAttention
from lra.attention.nystrom import NystromAttention
from lra.attention.performer import PerformerAttention
from lra.attention.polaformer import PolaFormerAttention
from lra.attention.softmax import SoftmaxAttention

ATTENTIONS: dict[str, type[Attention]] = {
    cls.name: cls
    for cls in (
        SoftmaxAttention,
        LinearAttention,
        NaLaAttention,
        NaLaReleasedAttention,
        NystromAttention,
        HedgehogAttention,
        PerformerAttention,
        CosFormerAttention,
        PolaFormerAttention,
    )
}
ENTRY_POINT_GROUP = "lra.attentions"
CONTRACT = "a torch.nn.Module subclass with __init__(dim, heads, <typed options>) and forward(x, mask)"
EXAMPLE_PATH = "mypkg.layers:MyAttention"


def installed_attentions() -> dict[str, str]:
    """Names that installed packages register in the ``lra.attentions`` entry-point group -> "module:Class".

    An entry point named like a built-in attention is ignored with a warning; two packages that register one
    name for different classes are an error.
    """
    found: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in ATTENTIONS:
            warnings.warn(
                f"entry point {entry.name} = {entry.value!r} ({ENTRY_POINT_GROUP}) is ignored: "
                f"{entry.name!r} is a built-in attention",
                stacklevel=2,
            )
        elif found.setdefault(entry.name, entry.value) != entry.value:
            raise ValueError(
                f"attention {entry.name!r} is registered twice in the {ENTRY_POINT_GROUP} entry points, as "
                f"{found[entry.name]!r} and {entry.value!r}: uninstall one of the packages"
            )
    return found


def known_attentions() -> list[str]:
    """The names a config may use: the built-in attentions, then those installed packages register."""
    return [*sorted(ATTENTIONS), *sorted(installed_attentions())]


def import_class(path: str, spec: str | None = None) -> type[nn.Module]:
    """The attention class at ``path`` ("package.module:Class"), checked against the contract.

    ``spec`` is what the user wrote (an entry-point name, or the path itself), for the error messages.
    """
    spec = spec or path
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"attention {spec!r}: expected an import path 'package.module:Class', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        hint = " (install its package, or put its folder on PYTHONPATH)" if isinstance(error, ImportError) else ""
        raise ValueError(
            f"attention {spec!r}: importing {module_name!r} failed with {type(error).__name__}: {error}{hint}"
        ) from error
    found: Any = module
    for part in qualname.split("."):
        if not hasattr(found, part):
            raise ValueError(f"attention {spec!r}: module {module_name!r} has no attribute {qualname!r}")
        found = getattr(found, part)
    return check_contract(found, spec)


def check_contract(cls: Any, spec: str) -> type[nn.Module]:
    """``cls`` itself if it is an attention class by the contract (CONTRACT); otherwise a ValueError saying why."""
    where = f"attention {spec!r}"
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        kind = type(cls).__name__ if not isinstance(cls, type) else f"class {cls.__qualname__}"
        raise ValueError(f"{where} is a {kind}, not an attention class: expected {CONTRACT}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ValueError(f"{where}: {cls.__qualname__} is abstract (it does not implement {missing})")
    params = list(inspect.signature(cls).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if [p.name for p in params[:2] if p.kind in positional] != ["dim", "heads"]:
        raise ValueError(f"{where}: its constructor must start with (dim, heads, ...), got ({_names(params)})")
    swallowing = [p for p in params if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if swallowing:
        raise ValueError(
            f"{where}: its constructor takes {_names(swallowing)}; declare each option as a typed keyword "
            "argument instead, so that a misspelt option is an error"
        )
    if cls.forward is nn.Module.forward:
        raise ValueError(f"{where}: {cls.__qualname__} defines no forward(x, mask)")
    forward = inspect.signature(cls.forward)
    try:
        forward.bind(None, "x", "mask")
    except TypeError:
        raise ValueError(
            f"{where}: its forward must take (x, mask), got forward({_names(forward.parameters.values())})"
        ) from None
    return cls


def _names(params: Iterable[inspect.Parameter]) -> str:
    """Parameter names as a signature shows them, without annotations: `dim, heads, *, eps, **kwargs`."""
    marks = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    return ", ".join(marks.get(p.kind, "") + p.name for p in params)


def resolve_attention(spec: str | type[nn.Module]) -> type[nn.Module]:
    """The attention class ``spec`` names: a built-in name, "package.module:Class", or an installed entry-point
    name, in that order (a class is checked against the contract and returned)."""
    if isinstance(spec, type):
        return check_contract(spec, f"{spec.__module__}:{spec.__qualname__}")
    if spec in ATTENTIONS:
        return ATTENTIONS[spec]
    if ":" in spec:
        return import_class(spec)
    installed = installed_attentions()
    if spec in installed:
        return import_class(installed[spec], spec)
    raise ValueError(
        f"unknown attention {spec!r}; known attentions: {', '.join(known_attentions())} "
        f"(or a class by import path, e.g. {EXAMPLE_PATH!r})"
    )


def accepted_kwargs(cls: type[nn.Module]) -> list[str]:
    """The keyword arguments of an attention's constructor besides dim and heads."""
    params = inspect.signature(cls).parameters
    return [name for name in params if name not in ("dim", "heads")]


def required_kwargs(cls: type[nn.Module]) -> list[str]:
    """The constructor's options without a default value (a user class may have some)."""
    params = inspect.signature(cls).parameters
    return [n for n, p in params.items() if n not in ("dim", "heads") and p.default is inspect.Parameter.empty]


def build_attention(
    name: str | type[nn.Module], dim: int, heads: int, kwargs: Mapping[str, Any] | None = None
) -> nn.Module:
    """Build the attention ``name`` resolves to (``resolve_attention``); unknown names, options the constructor
    does not take and missing required options raise ValueError."""
    cls = resolve_attention(name)
    label = name if isinstance(name, str) else cls.__qualname__
    kwargs = dict(kwargs or {})
    accepted = accepted_kwargs(cls)
    unexpected = sorted(set(kwargs) - set(accepted))
    if unexpected:
        raise ValueError(
            f"attention {label!r} got unexpected argument(s) {', '.join(unexpected)}; "
            f"it accepts: {', '.join(accepted) or '(none)'}"
        )
    missing = [key for key in required_kwargs(cls) if key not in kwargs]
    if missing:
        raise ValueError(
            f"attention {label!r} needs argument(s) {', '.join(missing)}; it accepts: {', '.join(accepted)}"
        )
    return cls(dim, heads, **kwargs)


__all__ = [
    "ATTENTIONS",
    "ENTRY_POINT_GROUP",
    "EXAMPLE_PATH",
    "Attention",
    "CosFormerAttention",
    "FeatureMap",
    "HedgehogAttention",
    "KernelAttention",
    "LinearAttention",
    "NaLaAttention",
    "NaLaReleasedAttention",
    "NystromAttention",
    "PerformerAttention",
    "PolaFormerAttention",
    "SoftmaxAttention",
    "accepted_kwargs",
    "build_attention",
    "check_contract",
    "import_class",
    "installed_attentions",
    "known_attentions",
    "required_kwargs",
    "resolve_attention",
]
