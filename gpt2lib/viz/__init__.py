"""Interactive views for the book: attention, embeddings, tokens and sampling.

Each view is plain HTML with its data embedded as JSON and vanilla JavaScript
inlined from gpt2lib/viz/static/, so it works in JupyterLab and in the static
HTML book with no kernel and no network. The live_* functions wrap a view in
ipywidgets controls that recompute it from a text box (JupyterLab with a kernel).

    from gpt2lib import viz
    viz.attention_view(model, tokenizer, "The cat sat on the mat")
"""

from .data import (AttentionData, EmbeddingData, SamplingData, TokenData, attention_data,
                   embedding_data, nearest_neighbours, pca_2d, sampling_data, token_data)
from . import heads
from .heads import HeadScores, choose_head, head_scores
from .labels import token_label, visible
from .live import live_attention, live_embedding, live_sampling, live_tokens
from .render import View
from .views import attention_view, embedding_view, sampling_view, token_view
