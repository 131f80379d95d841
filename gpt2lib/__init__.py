"""gpt2lib: GPT-2 built from scratch in readable PyTorch, one module per concept.

Modules in the order the book teaches them: tokenizer, config, layers, attention,
block, model, loading, generate, train; check compares each piece with Hugging
Face's GPT-2; viz draws the book's interactive views.
"""

from .config import SIZES, GPTConfig, count_parameters
from .attention import KVCache, CausalSelfAttention
from .block import Block
from .model import GPT, Trace

__version__ = "0.1.0"
from .notebook import show_source
from .tokenizer import Tokenizer, get_tokenizer, train_bpe
from .loading import BUNDLED_MODEL, from_pretrained, save_pretrained
from .generate import generate, next_token_probs, stream_generate
