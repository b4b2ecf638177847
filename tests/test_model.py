from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers.attentions import install_entry_points

from lra.attention import ATTENTIONS
from lra.model import Encoder, LRAModel, attention_per_layer, kwargs_per_layer, sinusoidal_table


def make_model(
    attention="nala", pooling="mean", position="learned", two_tower=False, protocol="clean", **kwargs
) -> LRAModel:
    torch.manual_seed(0)
    encoder = Encoder(
        vocab_size=16,
        max_length=24,
        attention=attention,
        attention_kwargs=kwargs,
        depth=2,
        dim=16,
        heads=2,
        ffn_dim=32,
        dropout=0.0,
        pooling=pooling,
        position=position,
        protocol=protocol,
    )
    return LRAModel(encoder, dim=16, ffn_dim=32, num_classes=10, two_tower=two_tower).eval()


@pytest.mark.parametrize("attention", sorted(ATTENTIONS))
@pytest.mark.parametrize(("pooling", "protocol"), [("mean", "clean"), ("mean", "faithful"), ("cls", "clean")])
def test_padding_changes_no_logit(attention: str, pooling: str, protocol: str) -> None:
    """A padded sequence classifies exactly like the same sequence alone, whatever the padding holds."""
    model = make_model(attention, pooling, protocol=protocol)
    lengths = [24, 9, 15]
    tokens = torch.randint(1, 16, (3, 24))
    mask = torch.arange(24)[None, :] < torch.tensor(lengths)[:, None]  # (B, L)
    padded = torch.where(mask, tokens, torch.zeros_like(tokens))
    garbage = torch.where(mask, tokens, torch.randint(1, 16, (3, 24)))
    with torch.no_grad():
        logits = model({"tokens": padded, "mask": mask})
        logits_garbage = model({"tokens": garbage, "mask": mask})
        alone = [model({"tokens": tokens[i : i + 1, :n], "mask": mask[i : i + 1, :n]}) for i, n in enumerate(lengths)]
    torch.testing.assert_close(logits, logits_garbage, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, torch.cat(alone), rtol=1e-4, atol=1e-5)


def test_hybrid_layers_get_their_own_attention_and_kwargs() -> None:
    model = make_model(["nala", "softmax"], alpha=2.0)
    first, second = (block.attention for block in model.encoder.blocks)
    assert type(first) is ATTENTIONS["nala"]
    assert type(second) is ATTENTIONS["softmax"]
    assert kwargs_per_layer(["nala", "softmax"], {"alpha": 2.0}) == [{"alpha": 2.0}, {"dropout": 0.0}]


def test_attention_dropout_reaches_the_attentions_that_take_one() -> None:
    assert kwargs_per_layer(["nala", "softmax"], {}, attention_dropout=0.1) == [{}, {"dropout": 0.1}]
    assert kwargs_per_layer(["softmax"], {"dropout": 0.3}, attention_dropout=0.1) == [{"dropout": 0.3}]
    model = make_model("softmax", dropout=0.2)
    assert all(block.attention.dropout == 0.2 for block in model.encoder.blocks)


def test_faithful_mean_pooling_divides_by_the_padded_power_of_two() -> None:
    """Protocol 2's code pools over its fixed padding, max_length rounded up to 2^k (24 -> 32); clean: real tokens."""
    tokens = torch.randint(1, 16, (2, 10))
    mask = torch.arange(10)[None, :] < torch.tensor([[10], [4]])
    faithful, clean = make_model("softmax", protocol="faithful"), make_model("softmax", protocol="clean")
    with torch.no_grad():
        pooled_faithful = faithful.encoder(tokens, mask)
        pooled_clean = clean.encoder(tokens, mask)
    torch.testing.assert_close(pooled_faithful * 32, pooled_clean * torch.tensor([[10.0], [4.0]]))


def test_embeddings_start_from_a_normal_of_std_0_02() -> None:
    model = make_model("softmax")
    for table in (model.encoder.embedding.tokens.weight, model.encoder.embedding.position.weight):
        assert abs(table.std().item() - 0.02) < 0.004 and abs(table.mean().item()) < 0.004


def test_attention_list_must_match_depth() -> None:
    with pytest.raises(ValueError, match=r"lists 3 attentions .* model.depth is 2"):
        attention_per_layer(["nala", "nala", "softmax"], 2)


def test_unknown_attention_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown attention \['nalla'\]; known: .*'nala'"):
        attention_per_layer("nalla", 2)


def test_kwarg_no_attention_accepts_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\['alpah'\] not accepted by any attention"):
        kwargs_per_layer(["nala", "softmax"], {"alpah": 2.0})


def test_kwargs_of_an_attention_not_in_use_are_left_out_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"\['alpha', 'beta'\] are not used: no layer's attention \(\['softmax'\]\)"):
        assert kwargs_per_layer(["softmax", "softmax"], {"alpha": 3.0, "beta": 0.5}) == [{"dropout": 0.0}] * 2


TEMPERED = "helpers.attentions:TemperedLinear"


def test_a_users_attention_by_import_path_in_a_hybrid_gets_its_own_options() -> None:
    from helpers.attentions import TemperedLinear

    model = make_model([TEMPERED, "nala"], temperature=2.0, alpha=2.5)
    first, second = (block.attention for block in model.encoder.blocks)
    assert type(first) is TemperedLinear and first.feature_q.temperature == 2.0
    assert type(second) is ATTENTIONS["nala"] and second.alpha == 2.5
    assert kwargs_per_layer([TEMPERED, "softmax"], {"temperature": 2.0}, 0.1) == [
        {"temperature": 2.0},
        {"dropout": 0.1},
    ]


def test_a_users_options_are_errors_or_warnings_like_ours() -> None:
    with pytest.raises(ValueError) as err:
        kwargs_per_layer([TEMPERED], {"temprature": 2.0})
    assert str(err.value) == (
        "model.attention_kwargs: ['temprature'] not accepted by any attention; accepted here: "
        f"{{'{TEMPERED}': ['eps', 'temperature']}}"
    )
    with pytest.warns(UserWarning, match=r"\['alpha'\] are not used: no layer's attention \(\['helpers"):
        assert kwargs_per_layer([TEMPERED], {"alpha": 3.0}) == [{}]


def test_options_of_an_installed_attention_not_in_use_are_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_entry_points(tmp_path, "user_attentions", {"tempered": TEMPERED, "broken": "no_such_module:Attn"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match=r"\['temperature'\] are not used: no layer's attention \(\['softmax'\]\)"):
        assert kwargs_per_layer(["softmax"], {"temperature": 2.0}) == [{"dropout": 0.0}]
    with pytest.raises(
        ValueError, match=r"\['temprature'\] not accepted by any attention"
    ):  # the broken one: no options
        kwargs_per_layer(["softmax"], {"temprature": 2.0})
    assert [type(block.attention).__name__ for block in make_model(["tempered", "nala"]).encoder.blocks] == [
        "TemperedLinear",
        "NaLaAttention",
    ]


def test_a_bad_import_path_in_model_attention_names_the_key() -> None:
    with pytest.raises(ValueError) as err:
        attention_per_layer(["nala", "helpers.attentions:OtherNames"], 2)
    assert str(err.value) == (
        "model.attention: attention 'helpers.attentions:OtherNames': its constructor must start with "
        "(dim, heads, ...), got (d_model, n_heads)"
    )
    with pytest.raises(ValueError, match=r"unknown attention \['nalla'\]; known: .*\(or a class by import path"):
        attention_per_layer(["nalla", TEMPERED], 2)


def test_two_tower_classifies_the_four_way_combination_with_one_shared_encoder() -> None:
    model = make_model("softmax", two_tower=True)
    a, b = torch.randint(1, 16, (2, 3, 24))
    mask = torch.ones(3, 24, dtype=torch.bool)
    with torch.no_grad():
        logits = model({"tokens_a": a, "mask_a": mask, "tokens_b": b, "mask_b": mask})
        u, v = model.encoder(a, mask), model.encoder(b, mask)
        expected = model.head(torch.cat([u, v, u * v, u - v], dim=-1))
    assert logits.shape == (3, 10)
    torch.testing.assert_close(logits, expected)


def test_sequence_longer_than_max_length_is_a_clear_error() -> None:
    model = make_model("softmax")
    with pytest.raises(ValueError, match="length 25 exceeds the model's max_length 24"):
        model({"tokens": torch.ones(1, 25, dtype=torch.long), "mask": torch.ones(1, 25, dtype=torch.bool)})


def test_sinusoidal_table_hand_values() -> None:
    table = sinusoidal_table(2, 4)
    expected = torch.tensor([[0.0, 1.0, 0.0, 1.0], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)]])
    torch.testing.assert_close(table, expected)


def test_bad_position_and_pooling_names() -> None:
    with pytest.raises(ValueError, match=r"model.position must be learned, sinusoidal or none, got .rotary."):
        make_model(position="rotary")
    with pytest.raises(ValueError, match=r"model.pooling must be mean or cls, got .max."):
        make_model(pooling="max")
