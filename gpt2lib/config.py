"""The model's hyperparameters, and GPT-2's four published sizes in one table.

Sizes follow Radford et al. (2019), "Language Models are Unsupervised Multitask
Learners", table 2, as released by OpenAI (github.com/openai/gpt-2). DistilGPT2 is
Hugging Face's 6-layer distillation of the smallest size.
"""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class GPTConfig:
    """Everything that fixes the shapes of a GPT-2 model.

    Shape letters used throughout gpt2lib: B batch, T sequence length (tokens),
    C = n_embd, nh = n_head, hs = head size = C // nh, V = n_vocab.
    """

    n_vocab: int = 50257  # 256 bytes + 50,000 merges + <|endoftext|>
    n_ctx: int = 1024  # longest sequence the position table covers
    n_embd: int = 768  # width of the residual stream
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads per block
    dropout: float = 0.0  # GPT-2 trained with 0.1; 0.0 for inference and checks
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        for name in ("n_vocab", "n_ctx", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: every head "
                f"gets n_embd // n_head dimensions; choose n_head among the divisors of n_embd"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.layer_norm_eps < float("inf"):  # NaN fails this too: it would make every logit NaN
            raise ValueError(f"layer_norm_eps must be positive and finite, got {self.layer_norm_eps}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def replace(self, **changes) -> "GPTConfig":
        """A copy with some fields changed (configs are frozen; never mutate one)."""
        return replace(self, **changes)


# name -> config. Parameter counts: 124M, 355M, 774M, 1558M (82M for distilgpt2).
SIZES: dict[str, GPTConfig] = {
    "gpt2": GPTConfig(n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": GPTConfig(n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": GPTConfig(n_layer=36, n_head=20, n_embd=1280),
    "gpt2-xl": GPTConfig(n_layer=48, n_head=25, n_embd=1600),
    "distilgpt2": GPTConfig(n_layer=6, n_head=12, n_embd=768),
}


def count_parameters(config: GPTConfig) -> int:
    """Parameters of a GPT-2 with this config, counted from the shapes alone.

    The LM head shares its matrix with wte, so it adds nothing.
    >>> count_parameters(SIZES["gpt2"])
    124439808
    """
    C, V = config.n_embd, config.n_vocab
    embeddings = V * C + config.n_ctx * C  # wte + wpe
    layer_norm = 2 * C  # gain + bias
    attention = (C * 3 * C + 3 * C) + (C * C + C)  # c_attn + c_proj
    mlp = (C * 4 * C + 4 * C) + (4 * C * C + C)  # c_fc + c_proj
    block = 2 * layer_norm + attention + mlp
    return embeddings + config.n_layer * block + layer_norm  # + ln_f
