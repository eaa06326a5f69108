"""Overhead of gp.GradientMonitor per SGD step against plain training, in one process.

Models: the MLP 784-256-256-256-10 (batch 128, cross-entropy), SPEC A4's N1 CNN (batch 200,
hinge loss on its score), a GPT-2 config (4 layers, width 128, 4 heads, sequence 64, a 4096-token
vocabulary, batch 8, next-token loss) and a BERT config (4 layers, width 128, sequence 64, batch 8,
3-class sequence classification), both from `transformers` with random weights in train mode.
For each rep, blocks of `steps` SGD steps (a whole number of 16-step cycles) are timed for plain
training, monitor every=1 and monitor every=16, interleaved in a rotating order; each variant
trains its own copy of the same model. Reported: the median over reps of (process CPU time of a
block) / (that of the plain block in the same rep); process CPU time is used because the machine
is shared (wall ratios are printed too).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_monitor.py [--reps 15] [--writer tb]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from gradprobe.diagnosis.monitor import DEFAULT_PROBES, GradientMonitor  # noqa: E402
from gradprobe.nets.tuple_nets import N1, init_trunc_normal_  # noqa: E402


def mlp_problem(g: torch.Generator):
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    x = torch.rand(128, 784, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)
    return model, nn.functional.cross_entropy, x, y


def n1_problem(g: torch.Generator):
    model = init_trunc_normal_(N1(), g)
    x = (torch.rand(200, 1, 28, 28, generator=g) < 0.05).float()
    y = torch.randint(0, 2, (200,), generator=g).float() * 2 - 1

    def hinge(score: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1 - score * target, min=0).mean()
    return model, hinge, x, y


VOCAB = 4096  # a small vocabulary: GPT-2's 50257 makes the lm_head most of a CPU step


def gpt2_problem(g: torch.Generator):
    import transformers as tf

    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=4, n_embd=128, n_head=4, n_positions=64,
                                             vocab_size=VOCAB, bos_token_id=0, eos_token_id=0))
    ids = torch.randint(0, model.config.vocab_size, (8, 64), generator=g)

    def lm(out, t):
        return nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]),
                                           t[:, 1:].reshape(-1))
    return model.train(), lm, {"input_ids": ids}, ids


def bert_problem(g: torch.Generator):
    import transformers as tf

    torch.manual_seed(0)
    model = tf.BertForSequenceClassification(tf.BertConfig(
        num_hidden_layers=4, hidden_size=128, num_attention_heads=4, intermediate_size=512,
        max_position_embeddings=64, num_labels=3, vocab_size=VOCAB))
    ids = torch.randint(0, model.config.vocab_size, (8, 64), generator=g)

    def cls(out, t):
        return nn.functional.cross_entropy(out.logits, t)
    return model.train(), cls, {"input_ids": ids}, torch.randint(0, 3, (8,), generator=g)


def time_block(model, opt, loss_fn, x, y, steps: int) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(**x) if isinstance(x, dict) else model(x), y).backward()
        opt.step()
    return time.process_time() - c, time.perf_counter() - w


def bench(name: str, problem, reps: int, steps: int, writer_kind: str, tmp: Path) -> dict:
    g = torch.Generator().manual_seed(0)
    model, loss_fn, x, y = problem(g)
    variants = {}
    for label, every in (("plain", None), ("every=1", 1), ("every=16", 16)):
        m = copy.deepcopy(model)
        mon = None
        if every is not None:
            if writer_kind == "tb":
                from torch.utils.tensorboard import SummaryWriter
                w = SummaryWriter(str(tmp / f"{name}-{every}"))
            else:
                w = tmp / f"{name}-{every}.jsonl"
            mon = GradientMonitor(m, every=every, writer=w)
        variants[label] = (m, torch.optim.SGD(m.parameters(), lr=1e-3), mon)
    for m, opt, _ in variants.values():  # warm-up
        time_block(m, opt, loss_fn, x, y, 16)
    labels = list(variants)
    cpu = {k: [] for k in labels}
    wall = {k: [] for k in labels}
    for r in range(reps):
        order = labels[r % 3:] + labels[:r % 3]
        for k in order:
            m, opt, _ = variants[k]
            c, w = time_block(m, opt, loss_fn, x, y, steps)
            cpu[k].append(c)
            wall[k].append(w)
    out = {"plain_ms": 1e3 * statistics.median(cpu["plain"]) / steps}
    for k in ("every=1", "every=16"):
        out[k] = statistics.median(a / b for a, b in zip(cpu[k], cpu["plain"], strict=True))
        out[k + " wall"] = statistics.median(
            a / b for a, b in zip(wall[k], wall["plain"], strict=True))
    for _, _, mon in variants.values():
        if mon is not None:
            mon.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--steps", type=int, default=32, help="steps per timed block (×16)")
    ap.add_argument("--writer", choices=("jsonl", "tb"), default="jsonl")
    ap.add_argument("--only", choices=("mlp", "n1", "gpt2", "bert"), default=None)
    args = ap.parse_args()
    if args.steps % 16:
        ap.error("--steps must be a multiple of 16 (whole monitor cycles)")
    torch.set_num_threads(int(os.environ.get("GRADPROBE_THREADS", 1)))
    print(f"probes {DEFAULT_PROBES}, writer {args.writer}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':<6} {'plain ms/step':>14} {'every=1':>9} {'every=16':>9}   (wall: 1, 16)")
    problems = {"mlp": mlp_problem, "n1": n1_problem, "gpt2": gpt2_problem, "bert": bert_problem}
    with tempfile.TemporaryDirectory() as d:
        for name, prob in problems.items():
            if args.only and name != args.only:
                continue
            r = bench(name, prob, args.reps, args.steps, args.writer, Path(d))
            print(f"{name:<6} {r['plain_ms']:>14.2f} {r['every=1']:>8.3f}x {r['every=16']:>8.3f}x"
                  f"   ({r['every=1 wall']:.3f}x, {r['every=16 wall']:.3f}x)", flush=True)


if __name__ == "__main__":
    main()
