"""Runs of gpt2lib.train that outlive one process: resume, torchrun/DDP, bf16, and refusing bad runs."""

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gpt2lib import GPT, GPTConfig
from gpt2lib.train import (STATE_FILE, TrainConfig, get_batch, loss_fn, repeat_windows, save_checkpoint,
                           load_checkpoint, make_optimizer, History, train)

TINY = GPTConfig(n_vocab=32, n_ctx=16, n_embd=32, n_layer=2, n_head=2, dropout=0.1)
DATA = torch.randint(0, 32, (2000,), generator=torch.Generator().manual_seed(0))
CONFIG = TrainConfig(steps=12, batch_size=4, block_size=16, warmup_steps=3, eval_interval=4, eval_batches=1,
                     checkpoint_interval=4, repeat_fraction=0.5, seed=3)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(config: GPTConfig = TINY, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config)


def without_time(history: History) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


class Killed(Exception):
    pass


def kill_at(step: int):
    """A callback that ends the process's run at a validation step, as a kill would."""
    def callback(record, model):
        if record["step"] == step:
            raise Killed
    return callback


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    whole = tiny_model()
    torch.manual_seed(100)  # dropout draws from torch's RNG
    whole_history = train(whole, DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path / "whole")

    stopped = tiny_model()
    torch.manual_seed(100)  # the same state as the whole run
    with pytest.raises(Killed):
        train(stopped, DATA, DATA, CONFIG, progress=False, callback=kill_at(7), checkpoint_dir=tmp_path / "run")
    saved = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)
    assert saved["step"] == 4, "the last checkpoint before the kill is the one after step 4"

    torch.manual_seed(999)  # a new process: its RNG state is not the one the run had
    resumed = tiny_model(seed=5)  # and its fresh weights are not either
    history = train(resumed, DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path / "run")
    assert without_time(history) == without_time(whole_history)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs between the resumed and the uninterrupted run"

    # Positive control: the same 8 steps from step 4 without the optimizer's moments and RNG
    # state (only the weights restored) end elsewhere, so the comparison above can fail.
    partial = tiny_model()
    partial.load_state_dict(saved["model"])
    short = replace(CONFIG, steps=8, warmup_steps=0, checkpoint_interval=0)
    train(partial, DATA, DATA, short, progress=False)
    assert not torch.equal(partial.lm_head.weight, whole.lm_head.weight)


def test_a_finished_run_is_not_trained_again(tmp_path):
    model = tiny_model()
    train(model, DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    again = tiny_model(seed=1)
    history = train(again, DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path)
    assert len(history.records) == CONFIG.steps
    assert all(torch.equal(weights[k], v) for k, v in again.state_dict().items())


def test_resuming_another_run_is_refused_with_the_differences(tmp_path):
    train(tiny_model(), DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"max_lr: saved 0.002, now 0.001.*delete .*train_state.pt"):
        train(tiny_model(), DATA, DATA, replace(CONFIG, max_lr=1e-3), progress=False, checkpoint_dir=tmp_path)
    wider = replace(TINY, n_embd=48, n_head=3)
    with pytest.raises(ValueError, match=r"model_config differs: n_embd: saved 32, now 48, n_head: saved 2, now 3"):
        train(tiny_model(wider), DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_checkpoint_is_an_error_not_a_fresh_start(tmp_path, damage):
    train(tiny_model(), DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path)
    path = tmp_path / STATE_FILE
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(4096), "empty": b""}[damage])
    model = tiny_model(seed=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="cannot be resumed from: it is damaged.*delete"):
        train(model, DATA, DATA, CONFIG, progress=False, checkpoint_dir=tmp_path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model was changed"


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny_model()
    optimizer = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95))
    generator = torch.Generator().manual_seed(0)
    history = History([{"step": 0}])
    save_checkpoint(tmp_path, model, optimizer, generator, history, CONFIG)
    good = (tmp_path / STATE_FILE).read_bytes()

    def disk_full(state, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    history.records.append({"step": 1})
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path, model, optimizer, generator, history, CONFIG)
    assert (tmp_path / STATE_FILE).read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE], "a partial file was left behind"
    monkeypatch.undo()
    restored = History()
    assert load_checkpoint(tmp_path, tiny_model(), make_optimizer(tiny_model(), 1e-3, 0.1, (0.9, 0.95)),
                           torch.Generator(), restored, CONFIG) == 1


def test_bf16_step_stays_close_to_the_fp32_step():
    """One step under bf16 autocast vs fp32: loss within 1%, gradients within 2% (relative norm)."""
    config = replace(TINY, dropout=0.0)
    x, y = get_batch(DATA, 8, 16, torch.Generator().manual_seed(1))
    results = {}
    for bf16 in (False, True):
        model = tiny_model(config)
        loss = loss_fn(model, x, y, bf16=bf16)
        loss.backward()
        assert loss.dtype == torch.float32 and all(p.dtype == torch.float32 for p in model.parameters())
        results[bf16] = loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])
    (loss32, grad32), (loss16, grad16) = results[False], results[True]
    assert loss16 != loss32, "bf16=True computed in fp32: autocast is not on"
    assert abs(loss16 - loss32) <= 0.01 * loss32, (loss16, loss32)
    relative = ((grad16 - grad32).norm() / grad32.norm()).item()
    assert relative <= 0.02, f"bf16 gradient differs from fp32 by {relative:.3%} of its norm"


@pytest.mark.parametrize("bad", ["lr", "weight"])
def test_training_stops_before_writing_non_finite_weights(tmp_path, bad):
    model = tiny_model()
    config = replace(CONFIG, max_lr=1e6, min_lr=1e6) if bad == "lr" else CONFIG
    if bad == "weight":
        with torch.no_grad():
            model.h[1].attn.c_attn.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="stopped before the update"):
        train(model, DATA, DATA, config, progress=False, checkpoint_dir=tmp_path)
    if (tmp_path / STATE_FILE).exists():
        state = torch.load(tmp_path / STATE_FILE, weights_only=True)
        assert all(torch.isfinite(v).all() for v in state["model"].values()), "a NaN checkpoint was saved"


@pytest.mark.parametrize("field, value", [("min_lr", -0.5), ("weight_decay", -1.0), ("grad_clip", math.nan),
                                          ("max_lr", math.inf), ("steps", 0), ("repeat_fraction", 1.5),
                                          ("batch_size", 2.5), ("betas", (0.9, 1.0))])
def test_bad_configs_are_refused(field, value):
    with pytest.raises(ValueError, match=f"{field}|min_lr"):
        TrainConfig(**{field: value})


def test_float_token_ids_are_refused():
    with pytest.raises(ValueError, match="must be integers"):
        train(tiny_model(), DATA.float() + 0.5, DATA, CONFIG, progress=False)


def test_repeat_windows_repeat_a_passage_and_keep_labels_shifted():
    x, y = get_batch(torch.arange(1000), 64, 16, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    rx, ry = repeat_windows(x, y, 0.5, generator)
    assert torch.equal(ry[:, :-1], rx[:, 1:]), "labels must stay the inputs shifted by one"
    repeated = [b for b in range(64) if not torch.equal(rx[b], x[b])]
    assert 16 <= len(repeated) <= 48, len(repeated)
    for b in repeated:
        window = torch.cat([rx[b], ry[b, -1:]])  # [17]
        assert torch.equal(window[9:], window[:8]), "the second half must repeat the first"
    state = torch.Generator().manual_seed(0).get_state()
    untouched = torch.Generator().manual_seed(0)
    assert repeat_windows(x, y, 0.0, untouched) == (x, y)
    assert torch.equal(untouched.get_state(), state), "fraction 0 must not draw: old runs keep their data order"


WORKER = Path(__file__).parent / "fixtures" / "ddp_train.py"


def test_ddp_on_two_processes_matches_one_process(tmp_path):
    """torchrun with 2 gloo processes, each on half of every batch: the loss curve of one process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
               "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0", str(WORKER), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "history.json").read_text())
    assert json.loads((tmp_path / "world.json").read_text()) == {"world_size": 2, "ranks_done": [0, 1],
                                                                 "first_batch_rows": [4, 4]}

    sys.path.insert(0, str(WORKER.parent))
    try:
        from ddp_train import MODEL, RUN, run
    finally:
        sys.path.pop(0)
    one = run()
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(RUN.steps))
    for a, b in zip(one, two):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5), (a, b)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4), (a, b)
    assert one[-1]["val_loss"] == pytest.approx(two[-1]["val_loss"], abs=1e-5)
    assert one[0]["train_loss"] - one[-1]["train_loss"] > 0.1, "the run must learn, or equal curves prove little"
    assert MODEL.dropout == 0
