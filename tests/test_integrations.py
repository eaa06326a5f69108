"""gradprobe.integrations: the Lightning and Hugging Face callbacks with real Trainers for a few CPU
steps (accumulation, bf16-mixed), checked against per-sample gradients from a loop; the wandb
writer's calls."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests import fixtures as fx
from tests.test_diagnosis_monitor import assert_logged, expected

F = nn.functional
# the frameworks' own deprecation and advice warnings are not ours to fix
FRAMEWORK_WARNINGS = [pytest.mark.filterwarnings("ignore::FutureWarning"),
                      pytest.mark.filterwarnings("ignore::DeprecationWarning"),
                      pytest.mark.filterwarnings("ignore::UserWarning")]


def _data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 10, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@FRAMEWORK_WARNINGS[0]
@FRAMEWORK_WARNINGS[1]
@FRAMEWORK_WARNINGS[2]
def test_lightning_callback_with_accumulation(tmp_path, precision):
    L = pytest.importorskip("lightning.pytorch")
    from gradprobe.integrations.lightning import GradientMonitorCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(10, 16), nn.GELU(), nn.Linear(16, 3))

        def training_step(self, batch, i):
            x, y = batch
            return F.cross_entropy(self.net(x), y)  # the inner net, not self(...)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    cb = GradientMonitorCallback(every=1)
    mod = Module()
    trainer = L.Trainer(max_steps=2, accumulate_grad_batches=2, precision=precision, callbacks=[cb],
                        accelerator="cpu", logger=L.loggers.CSVLogger(tmp_path),
                        enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False)
    trainer.fit(mod, loader)
    hist = cb.monitor.history
    assert [h["step"] for h in hist] == [0, 1]
    want = expected(mod.net, fx.brute_force_grads(mod.net, F.cross_entropy, x, y))
    want = {k.replace("/", "/net.", 1): v for k, v in want.items()}
    assert_logged(hist[0], want, rel=2e-3 if precision == "32-true" else 0.1)
    assert "activity/net.1" in hist[0]
    logged = (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").read_text()
    assert "variance/net.0" in logged  # through the Trainer's logger


@FRAMEWORK_WARNINGS[0]
@FRAMEWORK_WARNINGS[1]
@FRAMEWORK_WARNINGS[2]
def test_hf_trainer_callback_with_accumulation(tmp_path):
    tf = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from gradprobe.integrations.hf import GradientMonitorCallback

    torch.manual_seed(0)
    cfg = tf.BertConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                        intermediate_size=32, vocab_size=64, max_position_embeddings=16,
                        num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = tf.BertForSequenceClassification(cfg)
    g = torch.Generator().manual_seed(0)
    ids, y = torch.randint(1, 64, (8, 6), generator=g), torch.randint(0, 3, (8,), generator=g)
    data = [{"input_ids": ids[i], "labels": y[i]} for i in range(8)]
    cb = GradientMonitorCallback(every=1, accumulation="sum")  # see integrations/hf.py
    args = tf.TrainingArguments(output_dir=str(tmp_path), max_steps=2, learning_rate=0.0,
                                per_device_train_batch_size=4, gradient_accumulation_steps=2,
                                report_to=[], use_cpu=True, save_strategy="no",
                                logging_strategy="no", dataloader_num_workers=0,
                                disable_tqdm=True)
    tf.Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()
    hist = cb.monitor.history
    assert [h["step"] for h in hist] == [0, 1]  # one record per optimizer step
    model.eval()
    ref = fx.brute_force_grads(model, lambda o, t: F.cross_entropy(o.logits, t),
                               {"input_ids": ids}, y)
    want = {k: v for k, v in expected(model, ref).items() if "classifier" in k or "pooler" in k}
    assert want
    assert_logged(hist[0], want)  # the step's 8 samples, whatever their order


def test_wandb_writer_logs_each_probed_step():
    from gradprobe.integrations.wandb_writer import WandbWriter

    class Run:  # what GradientMonitor needs of a wandb run (wandb itself is optional)
        def __init__(self):
            self.calls = []

        def log(self, d, step):
            self.calls.append((step, d))

        def finish(self):
            pass

    import gradprobe as gp
    run = Run()
    model = nn.Sequential(nn.Linear(4, 3))
    mon = gp.GradientMonitor(model, every=2, writer=[WandbWriter(run), run])
    for _ in range(3):
        F.cross_entropy(model(torch.randn(5, 4)), torch.zeros(5, dtype=torch.long)).backward()
    mon.close()
    assert [s for s, _ in run.calls] == [0, 0, 2, 2]
    assert all(math.isfinite(v) for _, d in run.calls for v in d.values())
