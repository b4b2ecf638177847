"""The attention registry and constructor validation."""

from __future__ import annotations

import pytest
import torch

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
    build_attention,
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
