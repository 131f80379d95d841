"""gpt2lib.check's whole-model reference: transformers loading the checkpoint file itself.

A reference built from gpt2lib's own tensors cannot see a loader that puts the right
numbers under the wrong names; transformers reading the file can. Each test below has
its control: the same check passing on the model as loaded.
"""

import pytest
import torch

import gpt2lib
from gpt2lib import BUNDLED_MODEL, check, from_pretrained, save_pretrained
from gpt2lib.loading import hf_config, hf_state_dict
from conftest import CONFIGS, random_gpt, random_ids

SIZES = dict(vocab_size=61, n_positions=20, n_embd=24, n_layer=2, n_head=4, bos_token_id=None, eos_token_id=None)


@pytest.fixture(scope="module")
def transformers_checkpoint(tmp_path_factory):
    """A directory written by transformers' own save_pretrained: a GPT-2 whose every weight is
    random, layer-norm gains and biases included (at 1 and 0 a swap of ln_1 and ln_2 is invisible)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(**SIZES))
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)
    directory = tmp_path_factory.mktemp("transformers")
    hf.save_pretrained(directory)
    return directory


def ids_for(model, T=20):
    return random_ids(model.config, B=2, T=T)


def copy_of_own_tensors(model):
    """The reference check.hf_gpt2 used to build: transformers' model filled from gpt2lib's tensors."""
    from transformers import GPT2Config, GPT2LMHeadModel

    fields = {k: v for k, v in hf_config(model.config).items() if k not in ("model_type", "architectures", "dtype")}
    hf = GPT2LMHeadModel(GPT2Config(**fields, attn_implementation="eager"))
    hf.load_state_dict(hf_state_dict(model, torch.float32), strict=False)
    return hf.eval()


def swap_ln_1_and_ln_2(model, block=0):
    """A planted loader bug: block 0's two layer norms read each other's weights."""
    ln_1, ln_2 = model.h[block].ln_1, model.h[block].ln_2
    with torch.no_grad():
        for name in ("weight", "bias"):
            a, b = getattr(ln_1, name), getattr(ln_2, name)
            a_value = a.clone()
            a.copy_(b)
            b.copy_(a_value)


def test_a_checkpoint_made_by_transformers_passes(transformers_checkpoint):
    model = from_pretrained(transformers_checkpoint)
    ids = ids_for(model)
    for result in (check.check_logits(model, ids), check.check_hidden_states(model, ids),
                   check.check_greedy(model, ids[0, :8], n=10)):
        assert result, result


def test_a_weight_altered_after_loading_fails(transformers_checkpoint):
    model = from_pretrained(transformers_checkpoint)
    ids = ids_for(model)
    assert check.check_logits(model, ids)  # control: as loaded
    with torch.no_grad():
        model.h[0].ln_1.weight += 0.01
    result = check.check_logits(model, ids)
    assert not result and result.max_abs_diff > 1e-4, result
    assert str(result).startswith("[FAIL] logits: gpt2lib vs transformers, max |diff| = ")
    hidden = check.check_hidden_states(model, ids)
    assert not hidden and "first mismatch at index 1" in str(hidden), hidden  # after block 0


def test_a_loader_that_swaps_ln_1_and_ln_2_fails(transformers_checkpoint):
    model = from_pretrained(transformers_checkpoint)
    ids = ids_for(model)
    swap_ln_1_and_ln_2(model)
    # the reference built from gpt2lib's own tensors carries the same swap, and passes
    assert check.check_logits(model, ids, hf=copy_of_own_tensors(model)), "the swap should hide from a copy"
    result = check.check_logits(model, ids)  # transformers reads the file: ln_1's weights where they belong
    assert not result and result.max_abs_diff > 1e-3, result


def test_the_reference_holds_no_tensor_of_ours(transformers_checkpoint):
    model = from_pretrained(transformers_checkpoint)
    hf = check.hf_gpt2(model)
    ours = {p.data_ptr() for p in model.parameters()}
    assert not ours & {p.data_ptr() for p in hf.parameters()}
    assert hf.config._attn_implementation == "eager" and not hf.training
    assert hf.config.resid_pdrop == hf.config.embd_pdrop == hf.config.attn_pdrop == 0.0
    assert all(p.dtype == torch.float32 for p in hf.parameters())


def test_name_or_path_of_the_bundled_model_and_of_a_directory(transformers_checkpoint):
    bundled = from_pretrained(BUNDLED_MODEL)
    assert bundled.name_or_path == str(gpt2lib.loading.BUNDLED_DIR.absolute())
    assert from_pretrained(transformers_checkpoint).name_or_path == str(transformers_checkpoint.absolute())


def test_a_relative_directory_is_remembered_as_an_absolute_path(transformers_checkpoint, monkeypatch):
    monkeypatch.chdir(transformers_checkpoint.parent)
    model = from_pretrained(transformers_checkpoint.name)
    assert model.name_or_path == str(transformers_checkpoint.absolute())


def test_a_model_not_loaded_from_a_file_is_compared_through_save_pretrained():
    model = random_gpt(CONFIGS["3-heads"], seed=3)
    assert getattr(model, "name_or_path", None) is None
    ids = random_ids(model.config, T=17)
    assert check.check_logits(model, ids)
    with torch.no_grad():  # in memory, the reference is the weights the model holds now
        model.h[0].ln_1.weight += 0.01
    assert check.check_logits(model, ids)


def test_setting_name_or_path_to_none_compares_with_the_weights_in_memory(transformers_checkpoint):
    model = from_pretrained(transformers_checkpoint)
    with torch.no_grad():
        model.h[1].mlp.c_fc.bias += 0.05
    ids = ids_for(model)
    assert not check.check_logits(model, ids)
    model.name_or_path = None
    assert check.check_logits(model, ids)


def test_a_checkpoint_deleted_after_loading_is_named(transformers_checkpoint, tmp_path):
    import shutil

    directory = shutil.copytree(transformers_checkpoint, tmp_path / "gone")
    model = from_pretrained(directory)
    shutil.rmtree(directory)
    with pytest.raises(FileNotFoundError, match="moved or deleted after loading.*name_or_path = None"):
        check.check_logits(model, ids_for(model))


def test_a_checkpoint_overwritten_by_another_model_is_named(transformers_checkpoint, tmp_path):
    import shutil

    directory = shutil.copytree(transformers_checkpoint, tmp_path / "overwritten")
    model = from_pretrained(directory)
    save_pretrained(random_gpt(CONFIGS["1-head"]), directory)
    with pytest.raises(ValueError, match="changed after loading"):
        check.check_logits(model, ids_for(model))
