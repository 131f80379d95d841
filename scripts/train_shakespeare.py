"""Recipe of the bundled model "gpt2-shakespeare": data, training, export and model card.

    python scripts/train_shakespeare.py                # everything: about 85 min on 2 free CPU cores;
                                                       # stopped, it resumes from --work/run
    python scripts/train_shakespeare.py --card-only    # re-measure the shipped model, rewrite the card
    torchrun --nproc_per_node 8 scripts/train_shakespeare.py   # the same run on 8 processes (GPUs: nccl)

Stages: scripts/shakespeare_data.py downloads the corpus and tokenizes it into
--work; gpt2lib.train trains the model (seeded; same machine kind and thread count
give the same loss curve); the weights are written in Hugging Face format (float16)
to gpt2lib/data/gpt2-shakespeare/ with the tokenizer files; shakespeare_card.py
measures the shipped model and writes README.md and loss_curve.png next to it.
"""

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

sys.path.insert(0, str(Path(__file__).parent))
from shakespeare_data import load_tokens, prepare  # noqa: E402
from machine import cpu_name  # noqa: E402

import gpt2lib  # noqa: E402
from gpt2lib.train import TrainConfig, bf16_is_fast, config_dict, init_distributed, train  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "gpt2lib" / "data" / "gpt2-shakespeare"
TOKENIZER_DIR = REPO / "gpt2lib" / "data" / "gpt2-tokenizer"
MODEL_CONFIG = gpt2lib.GPTConfig(n_ctx=256, n_embd=192, n_layer=6, n_head=6, dropout=0.0)
# Six layers of 192 are the most that fit in 25 MB of fp16 weights (the vocabulary's
# 50257 x 192 table is 9.6M of the 12.4M parameters). One window in five repeats a
# passage, meant to make an induction head form in a short run; it did not (the model card
# gives the numbers with and without it). bf16 autocast is switched on where it is faster
# than fp32 (gpt2lib.train.bf16_is_fast): the shipped run had it, an AVX2-only CPU would not.
TRAIN_CONFIG = TrainConfig(steps=1600, batch_size=16, block_size=256, max_lr=2e-3, min_lr=2e-4,
                           warmup_steps=100, eval_interval=100, eval_batches=4, bf16=True,
                           checkpoint_interval=50, repeat_fraction=0.2)
THREADS = 2


class HeadProbe:
    """After every validation: the best previous-token and induction scores so far, saved as JSON.

    The card plots them against the tokens seen, to show when each kind of head formed.
    """

    def __init__(self, work: Path, val_data: torch.Tensor, frequent: torch.Tensor):
        from gpt2lib.interpret import repeated_random_tokens

        self.path = work / "head_scores.json"
        self.records = json.loads(self.path.read_text()) if self.path.exists() else []
        starts = torch.arange(4) * (len(val_data) // 4)
        self.windows = torch.stack([val_data[s : s + 256] for s in starts.tolist()]).long()  # [4, 256]
        self.repeated = repeated_random_tokens(50, batch_size=4, seed=0, pool=frequent)  # [4, 101]

    def __call__(self, record: dict, model) -> None:
        from gpt2lib.interpret import induction, previous_token_scores

        device = next(model.parameters()).device
        prev = previous_token_scores(model, self.windows.to(device))  # [L, nh]
        ind = induction(model, self.repeated.to(device), 50)
        self.records = [r for r in self.records if r["step"] < record["step"]]
        self.records.append({"step": record["step"], "tokens": record["tokens"], "val_loss": record["val_loss"],
                             "prev_best": prev.max().item(), "induction_best": ind.best_score,
                             "induction_loss_first": ind.loss_first, "induction_loss_second": ind.loss_second})
        self.path.write_text(json.dumps(self.records, indent=1))
        print(f"step {record['step'] + 1}: val {record['val_loss']:.3f}, previous-token {prev.max():.2f}, "
              f"induction {ind.best_score:.2f} ({ind.loss_first:.2f} -> {ind.loss_second:.2f} nats)", flush=True)


def frequent_tokens(train_data: torch.Tensor, count: int = 1000) -> torch.Tensor:
    """The count most frequent token ids of the training text (for induction measurements)."""
    return torch.bincount(train_data.long(), minlength=50257).argsort(descending=True)[:count]


def run_training(work: Path, train_config: TrainConfig) -> None:
    """Train, resuming from work/run if a checkpoint is there; write checkpoint.safetensors and training_log.json."""
    from safetensors.torch import save_file

    rank, world = init_distributed()  # (0, 1) unless started by torchrun
    if rank == 0:
        summary = prepare(work)
        (work / "data_summary.json").write_text(json.dumps(summary, indent=1))
    if world > 1:
        torch.distributed.barrier()  # the other processes wait for the data
        summary = json.loads((work / "data_summary.json").read_text())
    train_data, val_data = load_tokens(work, "train"), load_tokens(work, "val")
    torch.manual_seed(train_config.seed)
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    model = gpt2lib.GPT(MODEL_CONFIG).to(device)
    if train_config.bf16 and not bf16_is_fast(device):
        print(f"bf16 autocast is slower than fp32 on this {device} ({torch.backends.cpu.get_cpu_capability()} "
              "kernels): training in fp32", flush=True)
        train_config = dataclasses.replace(train_config, bf16=False)
    probe = HeadProbe(work, val_data, frequent_tokens(train_data))
    history = train(model, train_data, val_data, train_config, callback=probe, checkpoint_dir=work / "run")
    if rank != 0:
        return
    model.cpu()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(work / "checkpoint.safetensors"), metadata={"step": str(history.records[-1]["step"])})
    log = {
        "model_config": {k: getattr(MODEL_CONFIG, k) for k in MODEL_CONFIG.__dataclass_fields__},
        "train_config": config_dict(train_config),
        "data": summary,
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or cpu_name(),
                     "cpu_count": os.cpu_count(), "torch_threads": THREADS},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "parameters": model.num_parameters(),
        "train_seconds": history.records[-1]["seconds"],
        "history": history.records,
        "head_scores": probe.records,
    }
    (work / "training_log.json").write_text(json.dumps(log, indent=1))


def export(work: Path) -> None:
    """The trained checkpoint -> HF-format float16 model dir with tokenizer files and log."""
    from safetensors.torch import load_file

    model = gpt2lib.GPT(MODEL_CONFIG)
    state = load_file(str(work / "checkpoint.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"lm_head.weight"} or unexpected:
        raise RuntimeError(f"checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    gpt2lib.save_pretrained(model, MODEL_DIR, dtype=torch.float16)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(TOKENIZER_DIR / name, MODEL_DIR / name)
    log = json.loads((work / "training_log.json").read_text())
    (MODEL_DIR / "training_log.json").write_text(json.dumps(log, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gpt2-shakespeare-work", help="corpus, checkpoint, log")
    parser.add_argument("--steps", type=int, default=TRAIN_CONFIG.steps)
    parser.add_argument("--skip-train", action="store_true", help="export the existing checkpoint in --work")
    parser.add_argument("--card-only", action="store_true", help="only re-measure the shipped model, write the card")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if not args.card_only:
        if not args.skip_train:
            run_training(args.work, dataclasses.replace(TRAIN_CONFIG, steps=args.steps))
            if init_distributed()[0] != 0:
                return  # one process writes the model and the card
        export(args.work)
    from shakespeare_card import write_card

    write_card(MODEL_DIR, args.work)


if __name__ == "__main__":
    main()
