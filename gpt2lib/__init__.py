"""gpt2lib: GPT-2 built from scratch in readable PyTorch, one module per concept.

Modules in the order the book teaches them: tokenizer (with bpe), config, layers,
attention, block, model, loading, generate, quantize, train, interpret. check compares each
piece with Hugging Face's GPT-2; viz draws the book's interactive views; labs holds
the exercises' checks. transformers, tiktoken and the plotting libraries are
imported only by the functions that use them.
"""

from .tokenizer import Tokenizer, get_tokenizer, train_bpe
from .config import SIZES, GPTConfig, count_parameters
from .attention import CausalSelfAttention, KVCache
from .block import Block
from .model import GPT, Trace
from .loading import BUNDLED_MODEL, from_pretrained, save_pretrained
from .generate import generate, next_token_probs, stream_generate
from .quantize import quantize
from .notebook import show_source

__version__ = "0.1.0"
