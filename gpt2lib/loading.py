"""Loading and saving GPT-2 weights in Hugging Face's format: config.json + model.safetensors.

The key names and the Conv1D [in, out] layout are those of OpenAI's TensorFlow
checkpoints as converted by transformers (models/gpt2/modeling_gpt2.py): a key like
"transformer.h.0.attn.c_attn.weight" holds a [768, 2304] matrix that nn.Linear stores
as [2304, 768]. Weights are read with safetensors only: nothing is ever unpickled.
"""

import json
import math
import os
import re
import secrets
from pathlib import Path, PurePosixPath

import torch

from .config import GPTConfig
from .model import GPT

BUNDLED_MODEL = "gpt2-shakespeare"
BUNDLED_DIR = Path(__file__).parent / "data" / BUNDLED_MODEL
HUB_MODELS = {  # short name -> repository on the Hugging Face hub
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
    "distilgpt2": "distilbert/distilgpt2",
}
WEIGHTS, CONFIG, INDEX = "model.safetensors", "config.json", "model.safetensors.index.json"
FLOAT_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
# HF's Conv1D keeps weight as [in, out]; our nn.Linear keeps [out, in].
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
IGNORED = (".attn.bias", ".attn.masked_bias")  # the causal mask, once stored as a buffer
PREFIX = "transformer."


def resolve(name_or_path) -> Path:
    """The directory holding config.json + model.safetensors for a name or a path.

    Order: the bundled model, an existing local directory, a hub name (downloaded once
    into huggingface_hub's cache, with its progress bar).
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"expected a model name or a directory path (str or pathlib.Path), got "
                        f"{type(name_or_path).__name__} {name_or_path!r}; e.g. {BUNDLED_MODEL!r}")
    if str(name_or_path) == BUNDLED_MODEL:
        if not (BUNDLED_DIR / WEIGHTS).is_file():
            raise FileNotFoundError(f"the bundled model is missing from {BUNDLED_DIR}; reinstall gpt2lib")
        return BUNDLED_DIR
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if str(name_or_path) in HUB_MODELS:
        return download(str(name_or_path))
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; pass the directory that holds {CONFIG} and {WEIGHTS}")
    raise ValueError(
        f"{str(name_or_path)!r} is neither a directory nor a known model name; use "
        f"{BUNDLED_MODEL!r} (bundled, works offline), one of {', '.join(HUB_MODELS)} "
        f"(downloaded from the Hugging Face hub), or a directory with {CONFIG} + {WEIGHTS}"
    )


def download(name: str) -> Path:
    """Fetch config.json and model.safetensors of a hub model; return their directory."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        hf_hub_download(HUB_MODELS[name], CONFIG)
        return Path(hf_hub_download(HUB_MODELS[name], WEIGHTS)).parent
    except LocalEntryNotFoundError as e:
        raise ConnectionError(
            f"cannot fetch {name!r}: the Hugging Face hub is unreachable or offline mode is on "
            f"(HF_HUB_OFFLINE=1), and {name!r} is not in the local cache. On a machine that reaches "
            f"the hub, run `python -m gpt2lib info {name}` once (with HF_HUB_OFFLINE unset) to "
            f"download it; from_pretrained({BUNDLED_MODEL!r}) works offline"
        ) from e


# config.json's size fields and GPT-2 small's values, used when a field is absent
HF_SIZES = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12}


def read_config(directory: Path) -> GPTConfig:
    """GPTConfig from a Hugging Face GPT-2 config.json, refusing variants we do not implement."""
    path = directory / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG}; a model directory holds {CONFIG} + {WEIGHTS}")
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(hf, dict):
        raise ValueError(f"{path} must be one JSON object like {{\"model_type\": \"gpt2\", ...}}, got {type(hf).__name__}")
    if hf.get("model_type") != "gpt2":
        raise ValueError(f"{path}: model_type is {hf.get('model_type')!r}; gpt2lib loads GPT-2 models only")
    defaults = HF_SIZES | {"n_positions": hf.get("n_ctx", 1024)}  # older files call n_positions n_ctx
    sizes = {field: hf.get(field, default) for field, default in defaults.items()}
    for field, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: {field} must be a positive integer, got {value!r}; fix {field} in {CONFIG}")
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        raise ValueError(f"{path}: layer_norm_epsilon must be a finite positive number (GPT-2 uses 1e-05), got {eps!r}; "
                         f"fix layer_norm_epsilon in {CONFIG}")
    unsupported = {
        "scale_attn_by_inverse_layer_idx": hf.get("scale_attn_by_inverse_layer_idx", False),
        "reorder_and_upcast_attn": hf.get("reorder_and_upcast_attn", False),
        "add_cross_attention": hf.get("add_cross_attention", False),
        "scale_attn_weights=false": not hf.get("scale_attn_weights", True),
        "n_inner other than 4 * n_embd": hf.get("n_inner") not in (None, 4 * sizes["n_embd"]),
        # gelu_pytorch_tanh is torch's name for the same tanh approximation
        f"activation_function={hf.get('activation_function')}": hf.get("activation_function", "gelu_new")
        not in ("gelu_new", "gelu_pytorch_tanh"),
    }
    used = [name for name, on in unsupported.items() if on]
    if used:
        raise ValueError(f"{path} uses {', '.join(used)}: a GPT-2 variant gpt2lib does not implement")
    try:  # dropout rates are not read: from_pretrained is for inference (eval mode)
        return GPTConfig(
            n_vocab=sizes["vocab_size"],
            n_ctx=sizes["n_positions"],
            n_embd=sizes["n_embd"],
            n_layer=sizes["n_layer"],
            n_head=sizes["n_head"],
            layer_norm_eps=eps,
        )
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def weight_files(directory: Path) -> list[Path]:
    """model.safetensors, or the shards listed in model.safetensors.index.json."""
    if (directory / WEIGHTS).is_file():
        return [directory / WEIGHTS]
    index = directory / INDEX
    if index.is_file():
        return [shard_file(directory, name) for name in shard_names(index)]
    pickled = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt*")]
    hint = (
        f" It has {', '.join(sorted(pickled))}: gpt2lib never unpickles weights (a pickle can run "
        f"code). Convert it where you trust the file: GPT2LMHeadModel.from_pretrained(dir)"
        f".save_pretrained(dir) writes {WEIGHTS}." if pickled else ""
    )
    raise FileNotFoundError(f"{directory} has no {WEIGHTS}.{hint}")


def shard_names(index: Path) -> list[str]:
    """The shard files named in an index's weight_map {tensor name: shard file}, sorted."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise ValueError(f"{index} is not a JSON object as transformers writes it: {e}") from e
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
        raise ValueError(f'{index} needs "weight_map": {{tensor name: shard file name}}, as transformers writes it; '
                         f"it has {weight_map!r:.80}")
    return sorted(set(weight_map.values()))


def shard_file(directory: Path, name: str) -> Path:
    """A shard named in the index, which must be a regular file inside the checkpoint
    directory: no "../other/model.safetensors", no "/etc/passwd", no FIFO to block on."""
    if PurePosixPath(name).is_absolute() or Path(name).is_absolute() or ".." in Path(name).parts or not name:
        raise ValueError(f"{directory / INDEX} names the shard {name!r}, outside {directory}; shards are "
                         f"file names inside the checkpoint directory, like 'model-00001-of-00002.safetensors'")
    path = directory / name
    if not path.is_file():  # missing, a directory, or a FIFO or device a read would block on
        state = "not a regular file" if path.exists() else "missing"
        raise FileNotFoundError(f"{directory / INDEX} names the shard {name!r}, but {path} is {state}; "
                                f"copy the checkpoint again with all its shards")
    return path


def expected_shapes(model: GPT) -> dict[str, tuple[int, ...]]:
    """Checkpoint key (without "transformer.") -> shape in the file, i.e. Conv1D [in, out]."""
    shapes = {}
    for name, p in model.named_parameters():  # the tied lm_head.weight is listed once, as wte
        shapes[name] = tuple(reversed(p.shape)) if name.endswith(CONV1D) else tuple(p.shape)
    return shapes


def config_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """expected_shapes for a config, without building its n_layer blocks: the shapes of
    a one-block model, its block repeated. A config that claims 20,000 layers costs nothing."""
    with torch.device("meta"):
        one = expected_shapes(GPT(config.replace(n_layer=1)))
    shapes = {name: shape for name, shape in one.items() if not name.startswith("h.0.")}
    for i in range(config.n_layer):
        shapes |= {f"h.{i}.{name.removeprefix('h.0.')}": shape for name, shape in one.items() if name.startswith("h.0.")}
    return shapes


def check_header(files: list[Path], config: GPTConfig) -> None:
    """Compare every tensor's name, shape and dtype in the files' headers with the config,
    before any module is built or any tensor is read."""
    shapes, found, unexpected, layers = config_shapes(config), set(), [], set()
    for file in files:
        for key, (shape, stored) in read_header(file).items():
            name = key.removeprefix(PREFIX)
            if name.endswith(IGNORED):
                continue
            if match := re.match(r"h\.(\d+)\.", name):
                layers.add(int(match[1]))
            want = wanted_shape(shapes, name)
            if want is None:
                unexpected.append(key)
            else:
                check_entry(file, key, shape, stored, want)
                found.add(name)
    if 1 + max(layers, default=-1) < config.n_layer:
        raise ValueError(f"{CONFIG} says n_layer={config.n_layer}, but the weights hold {len(layers)} layers; "
                         f"do the config and the weights belong together?")
    check_names(found, unexpected, shapes)


def read_header(file: Path) -> dict[str, tuple[list[int], str]]:
    """{key: (shape, dtype such as "F32")} from a safetensors file's header; no tensor is read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(file, framework="pt") as f:
            return {key: (f.get_slice(key).get_shape(), f.get_slice(key).get_dtype()) for key in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{file} is not a readable safetensors file (truncated or corrupted?): {e}") from e


def wanted_shape(shapes: dict, name: str) -> tuple[int, ...] | None:
    """The shape the model needs for a tensor name; None for a name it has no use for."""
    return shapes.get(name, shapes["wte.weight"] if name == "lm_head.weight" else None)


def check_entry(file: Path, key: str, shape, stored: str, want: tuple[int, ...]) -> None:
    """A tensor's shape and dtype as the file's header gives them, checked before it is read."""
    if tuple(shape) != want:
        raise ValueError(f"{file.name}: tensor {key} has shape {list(shape)}, but the model in "
                         f"{CONFIG} needs {list(want)}; do the config and the weights belong together?")
    if stored not in FLOAT_DTYPES:  # an int or bool "weight" would be cast to float silently
        raise ValueError(f"{file.name}: tensor {key} is stored as {stored}, but weights are floating point "
                         f"({', '.join(FLOAT_DTYPES)}); the file holds something other than GPT-2 weights")


def check_finite(file: Path, key: str, stored: torch.Tensor, tensor: torch.Tensor) -> None:
    """Refuse NaN and inf: they give NaN logits, and greedy generation then repeats token 0."""
    if torch.isfinite(tensor).all():
        return
    bad = int((~torch.isfinite(stored)).sum())
    if bad:
        raise ValueError(f"{file.name}: tensor {key} holds {bad} NaN or infinite values (of {stored.numel()}); "
                         f"the checkpoint is broken: save it again from a model whose weights are finite")
    raise ValueError(f"{file.name}: tensor {key} overflows {tensor.dtype} (it holds values up to "
                     f"{float(stored.abs().max()):.3g}); load it with dtype=torch.float32")


def read_file(file: Path, shapes: dict, dtype: torch.dtype):
    """Yield (checkpoint key, our name, tensor) for each weight in one safetensors file,
    its shape and dtype checked before it is read, its values after (no NaN, no inf),
    Conv1D weights transposed to nn.Linear's layout.
    Unknown keys are yielded with tensor None; the causal-mask buffers are skipped."""
    from safetensors import SafetensorError, safe_open

    try:
        # pread copies each tensor into fresh memory, one at a time: no file mapping stays
        # behind, so the model does not change if the file is overwritten later.
        with safe_open(file, framework="pt", backend="pread") as f:
            for key in f.keys():
                name = key.removeprefix(PREFIX)
                if name.endswith(IGNORED):
                    continue
                want = wanted_shape(shapes, name)
                if want is None:
                    yield key, name, None
                    continue
                header = f.get_slice(key)
                check_entry(file, key, header.get_shape(), header.get_dtype(), want)
                stored = f.get_tensor(key)
                tensor = stored.to(dtype)
                check_finite(file, key, stored, tensor)
                if name.endswith(CONV1D):
                    tensor = tensor.t().contiguous()  # Conv1D [in, out] -> nn.Linear [out, in]
                yield key, name, tensor
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{file} is not a readable safetensors file (truncated or corrupted?): {e}") from e


def read_tensors(files: list[Path], shapes: dict, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Our state dict from the checkpoint files, with every key and shape checked.

    shapes: our parameter name -> shape in the file (expected_shapes).
    """
    state, unexpected = {}, []
    for file in files:
        for key, name, tensor in read_file(file, shapes, dtype):
            if tensor is None:
                unexpected.append(key)
            else:
                state[name] = tensor
    check_names(state, unexpected, shapes)
    lm_head = state.pop("lm_head.weight", None)  # a copy of wte in some checkpoints
    if lm_head is not None and not torch.equal(lm_head, state["wte.weight"]):
        raise ValueError("lm_head.weight differs from transformer.wte.weight; gpt2lib's GPT-2 ties the two")
    return state


def check_names(found, unexpected: list[str], shapes: dict) -> None:
    """Raise if a tensor the model needs is missing from the files, or one is left over."""
    missing = [PREFIX + name for name in shapes if name not in found]
    if missing or unexpected:
        problems = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"unexpected {_names(unexpected)}"] if unexpected else [])
        raise ValueError(f"the weights do not fit a GPT-2: {'; '.join(problems)}")


def _names(keys: list[str], limit: int = 8) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def from_pretrained(name_or_path, *, dtype: torch.dtype = torch.float32) -> GPT:
    """A GPT with pretrained weights, in eval mode.

    name_or_path: "gpt2-shakespeare" (bundled), a directory with config.json +
    model.safetensors (as written by save_pretrained here or in transformers), or one
    of gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2 (from the Hugging Face hub).
    dtype: torch.float32 (default), torch.float16, torch.bfloat16 or torch.float64.
    The model remembers where it came from, as transformers' models do: model.name_or_path
    is the absolute path of the directory it was read from (for a hub name, the download
    in huggingface_hub's cache). gpt2lib.check compares the model with transformers
    reading that directory itself.
    """
    check_dtype(dtype, FLOAT_DTYPES.values())
    directory = resolve(name_or_path)
    config = read_config(directory)
    files = weight_files(directory)
    check_header(files, config)  # names, shapes and dtypes: a wrong config fails before any module is built
    with torch.device("meta"):  # shapes only: no memory, no random initialization
        model = GPT(config)
    state = read_tensors(files, expected_shapes(model), dtype)
    model.load_state_dict(state, strict=False, assign=True)  # strict=False: lm_head is tied
    model.lm_head.weight = model.wte.weight  # re-tie: assign replaced wte's Parameter
    model.name_or_path = str(directory.absolute())  # the source of its weights, for the checks
    return model.eval()


def check_dtype(dtype, allowed) -> None:
    """Refuse a dtype outside `allowed`, e.g. the string "float16" for torch.float16."""
    if dtype not in allowed:
        hint = f"; pass torch.{dtype} (a torch.dtype, not a string)" if isinstance(dtype, str) else ""
        raise ValueError(f"dtype must be one of {', '.join(map(str, allowed))}, got {dtype!r}{hint}")


def hf_config(config: GPTConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The config.json that transformers' GPT2LMHeadModel reads for this GPTConfig."""
    eos = 50256 if config.n_vocab > 50256 else None  # <|endoftext|>, when the vocabulary has it
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.n_vocab,
        "n_positions": config.n_ctx,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "dtype": str(dtype).removeprefix("torch."),
    }


def hf_state_dict(model: GPT, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names and layout ("transformer." prefix, Conv1D [in, out])."""
    state = {}
    for name, p in model.named_parameters():  # lm_head.weight is wte's: not stored twice
        tensor = p.detach().t() if name.endswith(CONV1D) else p.detach()
        state[PREFIX + name] = tensor.to(dtype or p.dtype).contiguous()
    return state


def save_pretrained(model: GPT, directory, *, dtype: torch.dtype | None = None) -> Path:
    """Write config.json + model.safetensors that transformers' GPT2LMHeadModel loads.

    dtype: None keeps the model's; torch.float16 or torch.bfloat16 halve the file.
    Both files are written under temporary names, then renamed into place, config.json
    last: a save that fails (disk full, a file size limit, a crash) leaves the old
    checkpoint as it was, or no config.json, never a config of one model next to the
    weights of another. The shards and index of an older sharded checkpoint in the
    directory are removed; a directory whose vocab.json cannot be this model's is refused.
    """
    from safetensors.torch import save_file

    if dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16, got {dtype}")
    directory = Path(directory).expanduser()  # "~/ckpt" is $HOME/ckpt, as from_pretrained reads it
    check_save_directory(directory, model.config)
    state = hf_state_dict(model, dtype)
    bad = [key for key, tensor in state.items() if not torch.isfinite(tensor).all()]
    if bad:
        raise ValueError(f"{_names(bad)} hold NaN or infinite values{' in ' + str(dtype) if dtype else ''}: "
                         f"such a checkpoint would not load; save the model from before its weights diverged")
    config = hf_config(model.config, state[PREFIX + "wte.weight"].dtype)
    directory.mkdir(parents=True, exist_ok=True)
    weights_tmp, config_tmp = _temporary(directory, WEIGHTS), _temporary(directory, CONFIG)
    try:
        save_file(state, weights_tmp, metadata={"format": "pt"})
        os.chmod(weights_tmp, config_tmp.stat().st_mode)  # safetensors recreates the file, private
        config_tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for file in (weights_tmp, config_tmp):
            _fsync(file)
        (directory / CONFIG).unlink(missing_ok=True)  # until the last rename, nothing here loads
        for old in old_shards(directory):
            old.unlink()
        os.replace(weights_tmp, directory / WEIGHTS)
        os.replace(config_tmp, directory / CONFIG)
        _fsync(directory)
    finally:
        weights_tmp.unlink(missing_ok=True)
        config_tmp.unlink(missing_ok=True)
    return directory


def check_save_directory(directory: Path, config: GPTConfig) -> None:
    """Refuse to save onto a file, next to pickled weights, or next to a tokenizer too large for the model."""
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file; save_pretrained writes {CONFIG} + {WEIGHTS} into a "
                                 f"directory: pass a directory path (it is created if needed)")
    pickled = sorted(p.name for p in directory.glob("pytorch_model*.bin"))
    if pickled:
        raise FileExistsError(f"{directory} holds {', '.join(pickled)} of another checkpoint, which would stay next to "
                              f"the new {WEIGHTS}; delete it or save into another directory")
    vocab = directory / "vocab.json"
    try:
        n_tokens = 1 + max(json.loads(vocab.read_text(encoding="utf-8")).values()) if vocab.is_file() else 0
    except (ValueError, TypeError, AttributeError):
        return  # not readable as a vocabulary: loading it will say so
    if n_tokens > config.n_vocab:
        raise ValueError(f"{directory} holds a tokenizer (vocab.json) of {n_tokens} tokens, but the model has "
                         f"n_vocab={config.n_vocab}: the two cannot belong together; delete vocab.json and "
                         f"merges.txt or save into another directory")


def old_shards(directory: Path) -> list[Path]:
    """The index and shards of a sharded checkpoint in directory, which a new model.safetensors replaces."""
    index = directory / INDEX
    if not index.is_file():
        return []
    shards = set(directory.glob("model-*-of-*.safetensors"))
    try:
        shards |= {directory / name for name in shard_names(index) if Path(name).name == name}  # never outside it
    except ValueError:
        pass  # an unreadable index: remove it and the shards named in the usual way
    return [index] + sorted(shard for shard in shards if shard.is_file())


def _temporary(directory: Path, name: str) -> Path:
    """A new empty file in directory (so that os.replace is a rename on one file system),
    with the permissions a plain open would give it (mkstemp's are private)."""
    while True:
        path = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def _fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to the disk before relying on it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
