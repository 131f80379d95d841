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


# --- faults and hostile files ------------------------------------------------------------

SAVE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys, torch
from gpt2lib import GPT, GPTConfig, save_pretrained
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, not a kill
torch.manual_seed(1)
model = GPT(GPTConfig(n_vocab=97, n_ctx=48, n_embd=48, n_layer=3, n_head=4))
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # the weights need ~350 KB
try:
    save_pretrained(model, sys.argv[1])
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(3)
"""


def run_python(code, *args, timeout=120):
    import os
    import subprocess
    import sys

    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_a_save_that_fails_leaves_the_old_checkpoint(tmp_path):
    """Model B (n_head 4) over model A (n_head 2), same shapes: a failed save must not load as a hybrid."""
    a = random_gpt(CONFIG.replace(n_head=2), seed=2)
    save_pretrained(a, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = run_python(SAVE_UNDER_A_SIZE_LIMIT, tmp_path)
    assert result.returncode == 3, f"the save should fail under the size limit: {result.stdout}{result.stderr}"
    assert "File too large" in result.stdout or "Errno 27]" in result.stdout, result.stdout  # EFBIG
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, "the old files changed, or temporary ones stayed"
    loaded = from_pretrained(tmp_path)
    assert loaded.config.n_head == 2, "config.json is the new model's, the weights the old one's"
    assert torch.equal(loaded.h[0].attn.c_attn.weight, a.h[0].attn.c_attn.weight)


@pytest.mark.parametrize("failing_call", [1, 2])
def test_a_crash_between_the_renames_leaves_nothing_that_loads(tmp_path, monkeypatch, failing_call):
    save_pretrained(random_gpt(CONFIG.replace(n_head=2), seed=2), tmp_path)
    calls, replace = [], gpt2lib.loading.os.replace

    def crash(src, dst):
        calls.append(dst)
        if len(calls) == failing_call:
            raise OSError("simulated crash")
        replace(src, dst)

    monkeypatch.setattr(gpt2lib.loading.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_pretrained(random_gpt(CONFIG.replace(n_head=4), seed=3), tmp_path)
    monkeypatch.undo()
    assert [p.name for p in calls] == ["model.safetensors", "config.json"][:failing_call], "weights first, config last"
    with pytest.raises(FileNotFoundError, match=r"has no config.json"):
        from_pretrained(tmp_path)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files stayed behind"


def test_saving_over_a_sharded_checkpoint_replaces_its_shards(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(vocab_size=97, n_positions=48, n_embd=48, n_layer=3, n_head=3))
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1, "the test wanted several shards"
    model = random_gpt(CONFIG, seed=4)
    save_pretrained(model, tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.safetensors*")) == ["model.safetensors"]
    theirs = GPT2LMHeadModel.from_pretrained(tmp_path).eval()  # transformers reads the new model too
    ids = random_ids(CONFIG)
    assert check.compare("logits", logits(theirs, ids), logits(model, ids))


def test_save_refuses_a_file_pickled_weights_and_a_tokenizer_too_large(saved, tmp_path):
    model = saved[1]
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"a_file is a file; save_pretrained writes config.json \+ "
                                                 r"model.safetensors into a directory"):
        save_pretrained(model, tmp_path / "a_file")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "pytorch_model.bin").write_bytes(b"old weights")
    with pytest.raises(FileExistsError, match=r"holds pytorch_model.bin of another checkpoint"):
        save_pretrained(model, tmp_path / "old")
    gpt2lib.get_tokenizer().save(tmp_path / "tok")  # 50,257 tokens for a model of 97
    with pytest.raises(ValueError, match=r"holds a tokenizer \(vocab.json\) of 50257 tokens, but the model has n_vocab=97"):
        save_pretrained(model, tmp_path / "tok")
    assert not (tmp_path / "tok" / "config.json").exists()


def test_save_expands_the_home_directory_as_load_does(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    save_pretrained(saved[1], "~/ckpt")
    assert (tmp_path / "home" / "ckpt" / "model.safetensors").is_file()
    assert not (tmp_path / "~").exists(), "a directory literally named ~ was made"
    assert torch.equal(from_pretrained("~/ckpt").wte.weight, saved[1].wte.weight)


def test_save_refuses_non_finite_weights(saved, tmp_path):
    model = random_gpt(CONFIG, seed=5)
    with torch.no_grad():
        model.h[1].mlp.c_fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"transformer.h.1.mlp.c_fc.weight hold NaN or infinite values"):
        save_pretrained(model, tmp_path)
    assert not list(tmp_path.iterdir())


def write_index(directory, shard):
    (directory / "model.safetensors").rename(directory / "shard.safetensors")
    keys = list(load_file(directory / "shard.safetensors"))
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: shard for k in keys}}))


def test_an_index_with_one_local_shard_loads(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    write_index(directory, "shard.safetensors")
    assert torch.equal(from_pretrained(directory).wte.weight, saved[1].wte.weight)


@pytest.mark.parametrize("shard", ["../outside/model.safetensors", "/etc/passwd", "sub/../../x.safetensors"])
def test_shards_outside_the_directory_are_refused(saved, tmp_path, shard):
    directory = copy_of(saved, tmp_path)
    (tmp_path / "outside").mkdir()
    shutil.copy(directory / "model.safetensors", tmp_path / "outside" / "model.safetensors")
    write_index(directory, shard)
    with pytest.raises(ValueError, match=rf"names the shard '{shard}', outside .*; shards are file names inside"):
        from_pretrained(directory)


def test_a_fifo_as_a_shard_is_refused_without_hanging(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    write_index(directory, "fifo.safetensors")
    import os

    os.mkfifo(directory / "fifo.safetensors")  # opening it for reading blocks until a writer comes
    result = run_python("import sys; from gpt2lib import from_pretrained; from_pretrained(sys.argv[1])",
                        directory, timeout=90)
    assert "names the shard 'fifo.safetensors', but" in result.stderr and "is not a regular file" in result.stderr, result.stderr


@pytest.mark.parametrize("index, message", [
    ({"metadata": {}}, r'needs "weight_map": \{tensor name: shard file name\}'),
    ([], r"is not a JSON object as transformers writes it"),
    ({"weight_map": {"wte.weight": 3}}, r'needs "weight_map"'),
])
def test_malformed_index_names_the_file(saved, tmp_path, index, message):
    directory = copy_of(saved, tmp_path)
    (directory / "model.safetensors").unlink()
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"model.safetensors.index.json " + message):
        from_pretrained(directory)


def test_a_config_with_20000_layers_is_refused_before_any_module_is_built(saved, tmp_path):
    import time

    directory = copy_of(saved, tmp_path)
    rewrite_config(directory, n_layer=20_000)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"config.json says n_layer=20000, but the weights hold 3 layers"):
        from_pretrained(directory)
    seconds = time.perf_counter() - start
    assert seconds < 5, f"refusing took {seconds:.1f} s: are the modules built before the header is compared?"


@pytest.mark.parametrize("name", ["3-heads", "1-head", "8-heads"])
def test_config_shapes_equal_the_models_shapes(name):
    config = CONFIGS[name]
    assert gpt2lib.loading.config_shapes(config) == gpt2lib.loading.expected_shapes(gpt2lib.GPT(config))


@pytest.mark.parametrize("dtype, stored", [(torch.int32, "I32"), (torch.bool, "BOOL"), (torch.int64, "I64")])
def test_non_float_weights_are_refused(saved, tmp_path, dtype, stored):
    directory = copy_of(saved, tmp_path)
    key = "transformer.h.0.ln_1.weight"
    rewrite_weights(directory, lambda s: s.update({key: s[key].to(dtype)}))
    with pytest.raises(ValueError, match=rf"tensor {key} is stored as {stored}, but weights are floating point"):
        from_pretrained(directory)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused(saved, tmp_path, value):
    directory = copy_of(saved, tmp_path)
    key = "transformer.h.2.attn.c_proj.bias"
    rewrite_weights(directory, lambda s: s[key].__setitem__(3, value))
    with pytest.raises(ValueError, match=rf"tensor {key} holds 1 NaN or infinite values \(of 48\); the checkpoint is broken"):
        from_pretrained(directory)


def test_weights_that_overflow_float16_are_refused(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    key = "transformer.wpe.weight"
    rewrite_weights(directory, lambda s: s[key].__setitem__((0, 0), 1e6))
    assert from_pretrained(directory).wpe.weight[0, 0] == 1e6  # fine in float32
    with pytest.raises(ValueError, match=rf"tensor {key} overflows torch.float16 .*load it with dtype=torch.float32"):
        from_pretrained(directory, dtype=torch.float16)


@pytest.mark.parametrize("changes, message", [
    ({"layer_norm_epsilon": float("nan")}, r"layer_norm_epsilon must be a finite positive number .*got nan"),
    ({"layer_norm_epsilon": 0}, r"layer_norm_epsilon must be a finite positive number"),
    ({"layer_norm_epsilon": -1e-5}, r"layer_norm_epsilon must be a finite positive number"),
    ({"layer_norm_epsilon": float("inf")}, r"layer_norm_epsilon must be a finite positive number"),
    ({"layer_norm_epsilon": "1e-5"}, r"layer_norm_epsilon must be a finite positive number"),
    ({"n_embd": None}, r"n_embd must be a positive integer, got None; fix n_embd in config.json"),
    ({"n_layer": 2.5}, r"n_layer must be a positive integer, got 2.5"),
    ({"n_head": True}, r"n_head must be a positive integer, got True"),
    ({"vocab_size": 0}, r"vocab_size must be a positive integer, got 0"),
])
def test_bad_config_fields_are_named(saved, tmp_path, changes, message):
    directory = copy_of(saved, tmp_path)
    rewrite_config(directory, **changes)
    with pytest.raises(ValueError, match=r"config.json: " + message):
        from_pretrained(directory)


def test_a_config_that_is_not_an_object(saved, tmp_path):
    directory = copy_of(saved, tmp_path)
    (directory / "config.json").write_text("[]")
    with pytest.raises(ValueError, match=r"config.json must be one JSON object"):
        from_pretrained(directory)


def test_bad_arguments_to_from_pretrained(saved):
    with pytest.raises(TypeError, match=r"expected a model name or a directory path \(str or pathlib.Path\), got NoneType None"):
        from_pretrained(None)
    with pytest.raises(ValueError, match=r"dtype must be one of torch.float16, .* got 'float16'; pass torch.float16"):
        from_pretrained(saved[0], dtype="float16")
    with pytest.raises(ValueError, match=r"dtype must be one of"):
        from_pretrained(saved[0], dtype=torch.int8)
