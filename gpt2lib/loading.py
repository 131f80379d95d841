"""Loading and saving GPT-2 weights in Hugging Face's format: config.json + model.safetensors.

The key names and the Conv1D [in, out] layout are those of OpenAI's TensorFlow
checkpoints as converted by transformers (models/gpt2/modeling_gpt2.py): a key like
"transformer.h.0.attn.c_attn.weight" holds a [768, 2304] matrix that nn.Linear stores
as [2304, 768]. Weights are read with safetensors only: nothing is ever unpickled.
"""

import json
from pathlib import Path

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
WEIGHTS, CONFIG = "model.safetensors", "config.json"
# HF's Conv1D keeps weight as [in, out]; our nn.Linear keeps [out, in].
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
IGNORED = (".attn.bias", ".attn.masked_bias")  # the causal mask, once stored as a buffer
PREFIX = "transformer."


def resolve(name_or_path) -> Path:
    """The directory holding config.json + model.safetensors for a name or a path.

    Order: the bundled model, an existing local directory, a hub name (downloaded once
    into huggingface_hub's cache, with its progress bar).
    """
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


def read_config(directory: Path) -> GPTConfig:
    """GPTConfig from a Hugging Face GPT-2 config.json, refusing variants we do not implement."""
    path = directory / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG}; a model directory holds {CONFIG} + {WEIGHTS}")
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if hf.get("model_type") != "gpt2":
        raise ValueError(f"{path}: model_type is {hf.get('model_type')!r}; gpt2lib loads GPT-2 models only")
    unsupported = {
        "scale_attn_by_inverse_layer_idx": hf.get("scale_attn_by_inverse_layer_idx", False),
        "reorder_and_upcast_attn": hf.get("reorder_and_upcast_attn", False),
        "add_cross_attention": hf.get("add_cross_attention", False),
        "scale_attn_weights=false": not hf.get("scale_attn_weights", True),
        "n_inner other than 4 * n_embd": hf.get("n_inner") not in (None, 4 * hf.get("n_embd", 768)),
        # gelu_pytorch_tanh is torch's name for the same tanh approximation
        f"activation_function={hf.get('activation_function')}": hf.get("activation_function", "gelu_new")
        not in ("gelu_new", "gelu_pytorch_tanh"),
    }
    used = [name for name, on in unsupported.items() if on]
    if used:
        raise ValueError(f"{path} uses {', '.join(used)}: a GPT-2 variant gpt2lib does not implement")
    try:  # dropout rates are not read: from_pretrained is for inference (eval mode)
        return GPTConfig(
            n_vocab=hf.get("vocab_size", 50257),
            n_ctx=hf.get("n_positions", hf.get("n_ctx", 1024)),
            n_embd=hf.get("n_embd", 768),
            n_layer=hf.get("n_layer", 12),
            n_head=hf.get("n_head", 12),
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        )
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def weight_files(directory: Path) -> list[Path]:
    """model.safetensors, or the shards listed in model.safetensors.index.json."""
    if (directory / WEIGHTS).is_file():
        return [directory / WEIGHTS]
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [directory / shard for shard in shards]
    pickled = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt*")]
    hint = (
        f" It has {', '.join(sorted(pickled))}: gpt2lib never unpickles weights (a pickle can run "
        f"code). Convert it where you trust the file: GPT2LMHeadModel.from_pretrained(dir)"
        f".save_pretrained(dir) writes {WEIGHTS}." if pickled else ""
    )
    raise FileNotFoundError(f"{directory} has no {WEIGHTS}.{hint}")


def expected_shapes(model: GPT) -> dict[str, tuple[int, ...]]:
    """Checkpoint key (without "transformer.") -> shape in the file, i.e. Conv1D [in, out]."""
    shapes = {}
    for name, p in model.named_parameters():  # the tied lm_head.weight is listed once, as wte
        shapes[name] = tuple(reversed(p.shape)) if name.endswith(CONV1D) else tuple(p.shape)
    return shapes


def read_file(file: Path, shapes: dict, dtype: torch.dtype):
    """Yield (checkpoint key, our name, tensor) for each weight in one safetensors file,
    its shape checked before it is read, Conv1D weights transposed to nn.Linear's layout.
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
                want = shapes.get(name, shapes["wte.weight"] if name == "lm_head.weight" else None)
                if want is None:
                    yield key, name, None
                    continue
                got = tuple(f.get_slice(key).get_shape())
                if got != want:
                    raise ValueError(f"{file.name}: tensor {key} has shape {list(got)}, but the model in "
                                     f"{CONFIG} needs {list(want)}; do the config and the weights belong together?")
                tensor = f.get_tensor(key).to(dtype)
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
    missing = [PREFIX + name for name in shapes if name not in state]
    if missing or unexpected:
        problems = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"unexpected {_names(unexpected)}"] if unexpected else [])
        raise ValueError(f"the weights do not fit a GPT-2: {'; '.join(problems)}")
    lm_head = state.pop("lm_head.weight", None)  # a copy of wte in some checkpoints
    if lm_head is not None and not torch.equal(lm_head, state["wte.weight"]):
        raise ValueError("lm_head.weight differs from transformer.wte.weight; gpt2lib's GPT-2 ties the two")
    return state


def _names(keys: list[str], limit: int = 8) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def from_pretrained(name_or_path, *, dtype: torch.dtype = torch.float32) -> GPT:
    """A GPT with pretrained weights, in eval mode.

    name_or_path: "gpt2-shakespeare" (bundled), a directory with config.json +
    model.safetensors (as written by save_pretrained here or in transformers), or one
    of gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2 (from the Hugging Face hub).
    """
    directory = resolve(name_or_path)
    config = read_config(directory)
    files = weight_files(directory)
    with torch.device("meta"):  # shapes only: no memory, no random initialization
        model = GPT(config)
    state = read_tensors(files, expected_shapes(model), dtype)
    model.load_state_dict(state, strict=False, assign=True)  # strict=False: lm_head is tied
    model.lm_head.weight = model.wte.weight  # re-tie: assign replaced wte's Parameter
    return model.eval()


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
    """
    from safetensors.torch import save_file

    if dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16, got {dtype}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = hf_state_dict(model, dtype)
    config = hf_config(model.config, state[PREFIX + "wte.weight"].dtype)
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(state, directory / WEIGHTS, metadata={"format": "pt"})
    return directory
