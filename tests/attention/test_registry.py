"""The attention registry and constructor validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.attentions import install_entry_points

from lra.attention import (
    ATTENTIONS,
    Attention,
    CosFormerAttention,
    HedgehogAttention,
    LinearAttention,
    NaLaAttention,
    NaLaReleasedAttention,
    NystromAttention,
    PerformerAttention,
    PolaFormerAttention,
    SoftmaxAttention,
    accepted_kwargs,
    build_attention,
    installed_attentions,
    resolve_attention,
)


def test_registry_maps_names_to_classes() -> None:
    expected = {
        "softmax": SoftmaxAttention,
        "linear": LinearAttention,
        "nala": NaLaAttention,
        "nala_released": NaLaReleasedAttention,
        "performer": PerformerAttention,
        "cosformer": CosFormerAttention,
        "nystrom": NystromAttention,
        "polaformer": PolaFormerAttention,
        "hedgehog": HedgehogAttention,
    }
    assert expected == ATTENTIONS
    for name, cls in ATTENTIONS.items():
        module = build_attention(name, 16, 4)
        assert type(module) is cls
        assert isinstance(module, Attention)
        assert (module.dim, module.heads, module.head_dim) == (16, 4, 4)


def test_build_passes_kwargs() -> None:
    module = build_attention("nala", 8, 2, {"alpha": 2.0, "beta": 0.25, "variant": "cosine_inhibit"})
    assert isinstance(module, NaLaAttention)
    assert (module.alpha, module.beta, module.variant) == (2.0, 0.25, "cosine_inhibit")


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="'reformer'") as err:
        build_attention("reformer", 8, 2)
    for name in ATTENTIONS:
        assert name in str(err.value)


def test_unexpected_kwarg_names_key_and_accepted_keys() -> None:
    with pytest.raises(ValueError) as err:
        build_attention("nala", 8, 2, {"alpah": 3.0, "beta": 0.5})
    message = str(err.value)
    assert "'nala'" in message
    assert "alpah" in message
    assert "alpha" in message and "inhibit_scale" in message and "value_conv" in message
    with pytest.raises(ValueError, match=r"softmax.*temperature.*accepts: dropout"):
        build_attention("softmax", 8, 2, {"temperature": 0.1})
    with pytest.raises(ValueError, match=r"'linear'.*dropout.*accepts: eps"):  # no probabilities to drop
        build_attention("linear", 8, 2, {"dropout": 0.1})
    with pytest.raises(ValueError, match="heads"):  # dim and heads are not attention kwargs
        build_attention("linear", 8, 2, {"heads": 4})


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
@pytest.mark.parametrize(("dim", "heads"), [(10, 3), (0, 1), (8, 0), (-4, 2)])
def test_bad_dim_heads(name: str, dim: int, heads: int) -> None:
    with pytest.raises(ValueError, match=f"{name}: .*dim={dim}, heads={heads}"):
        build_attention(name, dim, heads)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": -1.0}, "nala: alpha must be > 0, got -1.0"),
        ({"alpha": 0.0}, "nala: alpha must be > 0, got 0.0"),
        ({"beta": -0.5}, "nala: beta must be >= 0, got -0.5"),
        ({"inhibit_scale": 0.0}, "nala: inhibit_scale must be > 0, got 0.0"),
        ({"variant": "relu"}, "nala: variant must be one of relu_split, cosine_inhibit, got 'relu'"),
        ({"eps": 0.0}, "nala: eps must be > 0, got 0.0"),
    ],
)
def test_nala_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as err:
        build_attention("nala", 8, 2, kwargs)
    assert str(err.value) == message


def test_learnable_alpha_beta_are_per_head_parameters() -> None:
    module = NaLaAttention(8, 2, alpha=2.5, beta=0.75, learnable=True)
    assert isinstance(module.alpha, torch.nn.Parameter) and isinstance(module.beta, torch.nn.Parameter)
    assert module.alpha.tolist() == [2.5, 2.5] and module.beta.tolist() == [0.75, 0.75]
    x = torch.randn(2, 5, 8)
    module(x).square().sum().backward()
    assert module.alpha.grad is not None and module.alpha.grad.abs().sum() > 0
    assert module.beta.grad is not None and module.beta.grad.abs().sum() > 0


# ---- a user's attention: by import path, by entry point, checked against the contract --------------------------

FIXTURES = "helpers.attentions"


def test_an_import_path_resolves_to_the_users_class_with_its_typed_options() -> None:
    from helpers.attentions import Plain, TemperedLinear

    assert resolve_attention(f"{FIXTURES}:TemperedLinear") is TemperedLinear
    module = build_attention(f"{FIXTURES}:TemperedLinear", 8, 2, {"temperature": 2.0})
    assert isinstance(module, TemperedLinear) and module.feature_q.temperature == 2.0
    assert accepted_kwargs(TemperedLinear) == ["temperature", "eps"]
    assert module.name == "TemperedLinear"  # no `name`: its class name, in its error messages
    plain = build_attention(f"{FIXTURES}:Plain", 8, 2, {"scale": 0.5})  # not an lra Attention subclass
    assert isinstance(plain, Plain) and plain.scale == 0.5
    assert build_attention(TemperedLinear, 8, 2).feature_q.temperature == 1.0  # a class itself


def test_a_users_options_are_checked_like_ours() -> None:
    with pytest.raises(ValueError) as err:
        build_attention(f"{FIXTURES}:TemperedLinear", 8, 2, {"temprature": 2.0})
    assert str(err.value) == (
        f"attention '{FIXTURES}:TemperedLinear' got unexpected argument(s) temprature; it accepts: temperature, eps"
    )
    with pytest.raises(ValueError) as err:
        build_attention(f"{FIXTURES}:NeedsRank", 8, 2)
    assert str(err.value) == f"attention '{FIXTURES}:NeedsRank' needs argument(s) rank; it accepts: rank"
    assert build_attention(f"{FIXTURES}:NeedsRank", 8, 2, {"rank": 4}).rank == 4
    with pytest.raises(ValueError, match=r"^tempered: temperature must be > 0, got 0\.0$"):  # its own validation
        build_attention(f"{FIXTURES}:TemperedLinear", 8, 2, {"temperature": 0.0})


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "no_such_package.layers:Attn",
            "attention 'no_such_package.layers:Attn': importing 'no_such_package.layers' failed with "
            "ModuleNotFoundError: No module named 'no_such_package' (install its package, or put its folder on "
            "PYTHONPATH)",
        ),
        (f"{FIXTURES}:Missing", f"attention '{FIXTURES}:Missing': module '{FIXTURES}' has no attribute 'Missing'"),
        (
            f"{FIXTURES}:a_function",
            f"attention '{FIXTURES}:a_function' is a function, not an attention class: expected a torch.nn.Module "
            "subclass with __init__(dim, heads, <typed options>) and forward(x, mask)",
        ),
        (
            f"{FIXTURES}:NotAModule",
            f"attention '{FIXTURES}:NotAModule' is a class NotAModule, not an attention class: expected a "
            "torch.nn.Module subclass with __init__(dim, heads, <typed options>) and forward(x, mask)",
        ),
        (
            f"{FIXTURES}:OtherNames",
            f"attention '{FIXTURES}:OtherNames': its constructor must start with (dim, heads, ...), "
            "got (d_model, n_heads)",
        ),
        (
            f"{FIXTURES}:SwallowsOptions",
            f"attention '{FIXTURES}:SwallowsOptions': its constructor takes **options; declare each option as "
            "a typed keyword argument instead, so that a misspelt option is an error",
        ),
        (
            f"{FIXTURES}:NoMask",
            f"attention '{FIXTURES}:NoMask': its forward must take (x, mask), got forward(self, x)",
        ),
        (
            f"{FIXTURES}:Abstract",
            f"attention '{FIXTURES}:Abstract': Abstract is abstract (it does not implement attend)",
        ),
        ("helpers.attentions", ""),  # a dotted name without a colon: an unknown name, as below
        (":Attn", "attention ':Attn': expected an import path 'package.module:Class', got ':Attn'"),
    ],
)
def test_a_bad_import_path_is_one_clear_line(path: str, message: str) -> None:
    if not message:
        message = f"unknown attention {path!r}; known attentions: {', '.join(sorted(ATTENTIONS))}"
    with pytest.raises(ValueError) as err:
        resolve_attention(path)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_module_that_fails_to_import_names_its_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_layers.py").write_text("import torch\nraise RuntimeError('bad weights file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as err:
        resolve_attention("broken_layers:Attn")
    assert str(err.value) == (
        "attention 'broken_layers:Attn': importing 'broken_layers' failed with RuntimeError: bad weights file"
    )


@pytest.mark.filterwarnings("ignore:entry point softmax")  # asserted once, inside the test
def test_an_entry_point_name_resolves_after_the_built_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.attentions import Plain, TemperedLinear

    entries = {"tempered": f"{FIXTURES}:TemperedLinear", "softmax": f"{FIXTURES}:Plain"}
    install_entry_points(tmp_path, "user_attentions", entries)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match=r"entry point softmax = .*Plain.* is ignored: 'softmax' is a built-in"):
        assert installed_attentions() == {"tempered": f"{FIXTURES}:TemperedLinear"}
    assert resolve_attention("tempered") is TemperedLinear
    assert resolve_attention("softmax") is SoftmaxAttention  # a package cannot change what a config means
    assert resolve_attention(f"{FIXTURES}:Plain") is Plain
    with pytest.raises(ValueError) as err:
        resolve_attention("tempred")
    assert str(err.value) == (
        f"unknown attention 'tempred'; known attentions: {', '.join(sorted(ATTENTIONS))}, tempered "
        "(or a class by import path, e.g. 'mypkg.layers:MyAttention')"
    )


def test_two_packages_registering_one_name_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(tmp_path, "first", {"mine": f"{FIXTURES}:TemperedLinear"})
    install_entry_points(tmp_path, "second", {"mine": f"{FIXTURES}:Plain"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"^attention 'mine' is registered twice in the lra.attentions entry points"):
        resolve_attention("mine")
    assert resolve_attention("nala") is NaLaAttention  # built-in names do not look at entry points


def test_a_broken_entry_point_says_which_name_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(tmp_path, "user_attentions", {"mine": f"{FIXTURES}:OtherNames"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"^attention 'mine': its constructor must start with \(dim, heads, \.\.\.\)"):
        build_attention("mine", 8, 2)
