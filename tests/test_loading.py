"""from_pretrained / save_pretrained: round trips through transformers, and every bad input."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import gpt2lib
from gpt2lib import BUNDLED_MODEL, check, from_pretrained, save_pretrained
from conftest import CONFIGS, random_gpt, random_ids

CONFIG = CONFIGS["3-heads"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A directory written by gpt2lib's save_pretrained, and the model it came from."""
    model = random_gpt(CONFIG, seed=5)
    return save_pretrained(model, tmp_path_factory.mktemp("saved")), model


def logits(model, ids):
    with torch.no_grad():
        return model(ids) if isinstance(model, gpt2lib.GPT) else model(ids).logits


def copy_of(saved, tmp_path):
    return shutil.copytree(saved[0], tmp_path / "copy")


def test_gpt2lib_to_transformers(saved):
    from transformers import GPT2LMHeadModel

    directory, model = saved
    hf = GPT2LMHeadModel.from_pretrained(directory).eval()
    ids = random_ids(CONFIG)
    assert check.compare("logits", logits(model, ids), logits(hf, ids)), "transformers reads our files differently"
    with safe_open(directory / "model.safetensors", framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert f.get_slice("transformer.h.0.attn.c_attn.weight").get_shape() == [48, 144], "Conv1D is [in, out]"
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["activation_function"] == "gelu_new" and config["eos_token_id"] is None  # n_vocab 97 < 50257


def test_transformers_to_gpt2lib(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=24, n_embd=36, n_layer=2, n_head=6)).eval()
    hf.save_pretrained(tmp_path)
    model = from_pretrained(tmp_path)
    assert not model.training and model.lm_head.weight is model.wte.weight
    ids = torch.randint(0, 50, (2, 24))
    assert check.compare("logits", logits(model, ids), logits(hf, ids))


def test_sharded_checkpoint_loads(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=24, n_embd=36, n_layer=2, n_head=6)).eval()
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1, "the test wanted several shards"
    ids = torch.randint(0, 50, (1, 24))
    assert check.compare("logits", logits(from_pretrained(tmp_path), ids), logits(hf, ids))


def test_save_load_round_trip_is_exact(saved):
    directory, model = saved
    loaded = from_pretrained(directory)
    for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters(), strict=True):
        assert torch.equal(a, b), f"{name} changed in the round trip"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_storage(saved, tmp_path, dtype):
    directory, model = saved
    save_pretrained(model, tmp_path, dtype=dtype)
    assert (tmp_path / "model.safetensors").stat().st_size < 0.6 * (directory / "model.safetensors").stat().st_size
    loaded = from_pretrained(tmp_path)  # back to float32
    assert loaded.wte.weight.dtype == torch.float32
    assert torch.equal(loaded.h[0].attn.c_attn.weight, model.h[0].attn.c_attn.weight.to(dtype).float())
    assert from_pretrained(tmp_path, dtype=dtype).wte.weight.dtype == dtype


def test_loaded_model_does_not_depend_on_the_file(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    model = from_pretrained(directory)
    before = model.wte.weight.clone()
    save_pretrained(random_gpt(CONFIG, seed=99), directory)  # overwrite the file it came from
    assert torch.equal(model.wte.weight, before)


def test_old_checkpoint_layout_loads(saved, tmp_path):
    """OpenAI's converted checkpoints have no "transformer." prefix, store the causal
    mask as attn.bias / attn.masked_bias, and may repeat the tied lm_head.weight."""
    directory = copy_of(saved, tmp_path)
    state = {k.removeprefix("transformer."): v for k, v in load_file(directory / "model.safetensors").items()}
    for i in range(CONFIG.n_layer):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, CONFIG.n_ctx, CONFIG.n_ctx).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    state["lm_head.weight"] = state["wte.weight"].clone()
    save_file(state, directory / "model.safetensors")
    ids = random_ids(CONFIG)
    assert check.compare("logits", logits(from_pretrained(directory), ids), logits(saved[1], ids), atol=0)


@pytest.mark.slow
def test_gpt2_124m_saved_by_transformers_loads_and_matches(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config()).eval()  # GPT-2 small's shapes, random weights
    hf.save_pretrained(tmp_path)
    model = from_pretrained(tmp_path)
    assert model.num_parameters() == 124_439_808 == hf.num_parameters()
    ids = torch.randint(0, 50257, (1, 64))
    result = check.compare("logits", logits(model, ids), logits(hf, ids))
    assert result, result


def test_bundled_model_loads_and_matches_transformers():
    if not (gpt2lib.loading.BUNDLED_DIR / "model.safetensors").is_file():
        pytest.skip(f"{BUNDLED_MODEL} is not in gpt2lib/data yet")
    model = from_pretrained(BUNDLED_MODEL)
    ids = torch.randint(0, model.config.n_vocab, (1, 32), generator=torch.Generator().manual_seed(0))
    # trained logits reach |20| or more, where float32 rounding in a different summation
    # order alone gives ~1e-5; the tiny random models above are held to 1e-5
    result = check.check_logits(model, ids, atol=1e-4)
    assert result, result


# --- bad input: each a clear message ----------------------------------------


def rewrite_config(directory, **changes):
    config = json.loads((directory / "config.json").read_text()) | changes
    (directory / "config.json").write_text(json.dumps(config))


def rewrite_weights(directory, change):
    state = load_file(directory / "model.safetensors")
    change(state)
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})


def test_unknown_name_lists_the_options():
    with pytest.raises(ValueError, match=r"'gpt3' is neither a directory nor a known model name; use "
                                         r"'gpt2-shakespeare' \(bundled, works offline\), one of gpt2, gpt2-medium"):
        from_pretrained("gpt3")


def test_hub_name_offline_without_a_cached_copy(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(ConnectionError) as error:
        from_pretrained("distilgpt2")
    message = str(error.value)
    assert "hub is unreachable or offline" in message and "not in the local cache" in message
    assert "from_pretrained('gpt2-shakespeare') works offline" in message
    assert "python -m gpt2lib info distilgpt2" in message  # how to fetch it where the hub is reachable


def test_directory_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(FileNotFoundError, match=r"has no model.safetensors"):
        from_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(FileNotFoundError, match=r"It has pytorch_model.bin: gpt2lib never unpickles weights"):
        from_pretrained(tmp_path)


def test_directory_without_config(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    (directory / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no config.json"):
        from_pretrained(directory)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupted_safetensors_names_the_file(saved, tmp_path, damage):
    directory = copy_of(saved, tmp_path)
    file = directory / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes({"truncated": data[: len(data) - 100], "garbage": bytes(range(256)) * 4, "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"copy/model.safetensors is not a readable safetensors file \(truncated or corrupted\?\)"):
        from_pretrained(directory)


def test_shape_mismatch_names_the_tensor(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    rewrite_config(directory, n_positions=64)
    with pytest.raises(ValueError, match=r"tensor transformer.wpe.weight has shape \[48, 48\], but the model in "
                                         r"config.json needs \[64, 48\]"):
        from_pretrained(directory)


def test_transposed_conv1d_weight_is_a_shape_error(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    key = "transformer.h.1.mlp.c_fc.weight"
    rewrite_weights(directory, lambda s: s.update({key: s[key].t().contiguous()}))
    with pytest.raises(ValueError, match=rf"tensor {key} has shape \[192, 48\], but .* needs \[48, 192\]"):
        from_pretrained(directory)


def test_missing_and_unexpected_keys_are_named(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    rewrite_weights(directory, lambda s: s.update({"transformer.h.9.mlp.extra": s.pop("transformer.h.2.ln_2.bias")}))
    with pytest.raises(ValueError, match=r"missing transformer.h.2.ln_2.bias; unexpected transformer.h.9.mlp.extra"):
        from_pretrained(directory)


def test_untied_lm_head_is_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    rewrite_weights(directory, lambda s: s.update({"lm_head.weight": torch.randn(97, 48)}))
    with pytest.raises(ValueError, match=r"lm_head.weight differs from transformer.wte.weight"):
        from_pretrained(directory)


@pytest.mark.parametrize("changes, message", [
    ({"model_type": "llama"}, r"model_type is 'llama'; gpt2lib loads GPT-2 models only"),
    ({"scale_attn_by_inverse_layer_idx": True}, r"uses scale_attn_by_inverse_layer_idx: a GPT-2 variant"),
    ({"reorder_and_upcast_attn": True}, r"uses reorder_and_upcast_attn"),
    ({"activation_function": "relu"}, r"uses activation_function=relu"),
    ({"n_inner": 100}, r"uses n_inner other than 4 \* n_embd"),
    ({"n_head": 5}, r"config.json: n_embd=48 is not divisible by n_head=5"),
])
def test_unsupported_configs_are_refused(saved, tmp_path, changes, message):
    directory = copy_of(saved, tmp_path)
    rewrite_config(directory, **changes)
    with pytest.raises(ValueError, match=message):
        from_pretrained(directory)


def test_save_pretrained_refuses_odd_dtypes(saved, tmp_path):
    with pytest.raises(ValueError, match=r"dtype must be None, torch.float32, torch.float16 or torch.bfloat16"):
        save_pretrained(saved[1], tmp_path, dtype=torch.int8)
