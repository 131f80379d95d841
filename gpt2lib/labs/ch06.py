"""Exercise checks for chapter 6, the full model and loading a checkpoint.

References: gpt2lib.config.count_parameters and gpt2lib.GPT; the converted weights
are checked against transformers' GPT2LMHeadModel (the checkpoint's own layout,
with OpenAI's Conv1D [in, out] weights) on identical ids.
"""

import torch

from ..config import SIZES, GPTConfig, count_parameters
from ..model import GPT
from .core import Mistake, call, exercise, fmt, judge, max_diff, short


@exercise("6.1", "count the parameters", kind="implement",
          hint="go through the parts in order, embeddings, blocks, final layer norm; count every weight and bias once")
def check_count_parameters(count):
    """count(config: GPTConfig) -> int, the number of distinct parameters."""
    configs = {"gpt2": SIZES["gpt2"], "gpt2-medium": SIZES["gpt2-medium"],
               "a tiny config": GPTConfig(n_vocab=100, n_ctx=16, n_embd=8, n_layer=3, n_head=2)}
    tiny = GPT(configs["a tiny config"]).num_parameters()
    if tiny != count_parameters(configs["a tiny config"]):
        raise RuntimeError("gpt2lib's count_parameters disagrees with the model it describes")
    for name, c in configs.items():
        got = call(count, c, on=name)
        if not isinstance(got, int) or isinstance(got, bool):
            try:
                got = int(got)
            except Exception:
                raise Mistake(f"return a whole number, got {type(got).__name__}") from None
        expected = count_parameters(c)
        if got == expected:
            continue
        C, L, V = c.n_embd, c.n_layer, c.n_vocab
        known = {V * C: "you counted the LM head: it shares wte's matrix (weight tying), so it adds nothing",
                 -c.n_ctx * C: "the position embeddings wpe [n_ctx, C] are missing",
                 -2 * C: "the final layer norm ln_f (weight and bias) is missing",
                 -L * 4 * C: "the two layer norms inside each block are missing",
                 -L * 9 * C - 2 * C - L * 4 * C: "the biases and layer norms are missing",
                 -L * 9 * C: "the biases of c_attn, c_proj, c_fc and the MLP's c_proj are missing",
                 -V * C: "the token embeddings wte [V, C] are missing"}
        why = known.get(got - expected, "compare your count with the model's state_dict(), one entry at a time")
        raise Mistake(f"for {name} you counted {got:,}, the model has {expected:,} "
                      f"(difference {got - expected:+,}): {why}")
    return "right for gpt2 (124,439,808), gpt2-medium and a tiny config"


def _tiny_hf_model(seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                        bos_token_id=None, eos_token_id=None, attn_implementation="eager")
    return GPT2LMHeadModel(config).eval()


@exercise("6.2", "load a checkpoint", kind="implement",
          hint="compare the checkpoint's names and shapes with the model's state_dict()")
def check_convert_state_dict(convert):
    """convert(hf_state_dict) -> a state dict that gpt2lib.GPT loads, giving the same logits."""
    hf = _tiny_hf_model(62)
    ours = GPT(GPTConfig(n_vocab=64, n_ctx=32, n_embd=16, n_layer=2, n_head=2)).eval()
    given = {k: v.clone() for k, v in hf.state_dict().items()}
    state = call(convert, given, on="a 2-layer checkpoint in transformers' layout")
    if not isinstance(state, dict):
        raise Mistake(f"return a dict of name -> tensor, got {type(state).__name__}")
    if any(k.startswith("transformer.") for k in state):
        raise Mistake("the names still start with 'transformer.': gpt2lib's are wte, wpe, h.0..., ln_f")
    expected = ours.state_dict()
    missing = sorted(set(expected) - set(state) - {"lm_head.weight"})
    if missing:
        raise Mistake(f"missing {len(missing)} weights, e.g. {missing[:3]}: keep every name, only strip the prefix")
    for name, tensor in state.items():
        if name not in expected:
            continue
        if tuple(tensor.shape) != tuple(expected[name].shape):
            fix = ("only the Conv1D weights (c_attn, c_proj, c_fc) need .t()" if not name.endswith(
                ("c_attn.weight", "c_proj.weight", "c_fc.weight")) else
                "the checkpoint's Conv1D stores [in, out]; nn.Linear wants [out, in]: .t()")
            raise Mistake(f"{name} has shape {list(tensor.shape)}, the model's is "
                          f"{list(expected[name].shape)}: {fix}")
    try:
        ours.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    except RuntimeError as e:
        raise Mistake(f"the model cannot load it: {short(str(e))}") from None
    ids = torch.tensor([[1, 5, 9, 2, 33, 60, 7]])
    with torch.no_grad():
        diff = max_diff(ours(ids), hf(ids).logits)
    if diff > 1e-4:
        raise Mistake(f"the logits differ from transformers' by {fmt(diff)}: the square c_proj [C, C] "
                      f"loads without an error but must be transposed too, like c_attn and c_fc")
    return "the converted weights give transformers' logits (max |diff| <= 1e-4)"


@exercise("6.3", "predict: without weight tying", kind="predict",
          hint="how many parameters would GPT-2 small have if the LM head had its own matrix?")
def check_predict_untied_parameters(prediction):
    """prediction: GPT-2 small's parameter count with an untied LM head (within 1%)."""
    c = SIZES["gpt2"]
    n = count_parameters(c) + c.n_vocab * c.n_embd
    return judge(prediction, n, tolerance=0.01 * n,
                 explain="124,439,808 + 50,257 x 768 = 163,037,184: tying saves 38.6 M, almost a third")
