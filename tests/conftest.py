"""Shared fixtures: tiny seeded GPT-2 configs and their transformers twins.

HF_HUB_OFFLINE is set before anything imports huggingface_hub (it reads the variable
once, at import): the tests never touch the network.
"""

import importlib.util
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from gpt2lib import GPT, GPTConfig  # noqa: E402

# Odd shapes on purpose: 3 heads of 16, a vocabulary that is not a power of two,
# a single head, many small heads.
CONFIGS = {
    "3-heads": GPTConfig(n_vocab=97, n_ctx=48, n_embd=48, n_layer=3, n_head=3),
    "1-head": GPTConfig(n_vocab=64, n_ctx=32, n_embd=32, n_layer=1, n_head=1),
    "8-heads": GPTConfig(n_vocab=101, n_ctx=64, n_embd=64, n_layer=2, n_head=8),
}


ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """A script of scripts/ imported as a module, for the tests of its functions."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_gpt(config: GPTConfig, seed: int = 0, std: float = 0.15) -> GPT:
    """A GPT in eval mode whose every parameter is random, LayerNorm gains and biases included.

    GPT's own init leaves gains at 1 and biases at 0, which would hide a swapped gain and
    bias; a larger std than GPT-2's 0.02 makes attention sharp and greedy text varied.
    """
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)
    return model.eval()


def random_ids(config: GPTConfig, B: int = 2, T: int | None = None, seed: int = 1) -> torch.Tensor:
    """[B, T] token ids, T = n_ctx unless given."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.n_vocab, (B, T or config.n_ctx), generator=g)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread, and a busy machine does not slow them down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def config(request) -> GPTConfig:
    return CONFIGS[request.param]


@pytest.fixture
def model(config) -> GPT:
    return random_gpt(config)


@pytest.fixture
def hf(model):
    """transformers' GPT2LMHeadModel reading `model` as gpt2lib's save_pretrained writes it (eager attention)."""
    from gpt2lib.check import hf_gpt2

    return hf_gpt2(model)


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright: one instance for the whole test session
    (Playwright's sync API allows only one running instance per thread)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium. Install it with "
            "`apt-get update && apt-get install -y chromium` (or set CHROMIUM to a Chromium binary)."
        )
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    playwright.stop()
