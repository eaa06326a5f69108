"""Shared test problems: small nets and batches. Each problem family is its own block."""

from __future__ import annotations

import torch
from torch import nn

F = nn.functional


# ---- line-image tuples (SPEC A4, A5) ------------------------------------------------------
def line_tuples(k: int = 3, b: int = 6, seed: int = 0):
    """b seeded k-tuples of line images: (images (b, k, 28, 28), labels (b, k), parity (b,))."""
    from gradprobe.tasks.lines import sample_tuples

    return sample_tuples(b, k, torch.Generator().manual_seed(seed))


# ---- diagnosis / monitor: small models of every unit kind, and a brute-force reference ----------
class TokenNet(nn.Module):
    """Embedding (with padding_idx) → LayerNorm → Linear over tokens → mean → head."""

    def __init__(self, vocab: int = 20, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d, padding_idx=0)
        self.norm = nn.LayerNorm(d)
        self.rms = nn.RMSNorm(d)
        self.lin = nn.Linear(d, d)
        self.act = nn.GELU()
        self.head = nn.Linear(d, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.lin(self.rms(self.norm(self.emb(ids))))).mean(1))


class EncoderNet(nn.Module):
    """nn.TransformerEncoder (MultiheadAttention inside) with batch_first either way."""

    def __init__(self, batch_first: bool = True, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.batch_first = batch_first
        layer = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.1, batch_first=batch_first)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(x).mean(1 if self.batch_first else 0))


class MHANet(nn.Module):
    """nn.MultiheadAttention alone (in_proj and out_proj), then a head."""

    def __init__(self, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(d, 2, batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, _ = self.mha(x, x, x)
        return self.head(z.mean(1))


class RecurrentNet(nn.Module):
    """An RNN / LSTM / GRU (2 layers, batch first) read at its last step."""

    def __init__(self, cell: type[nn.RNNBase], d: int = 5, h: int = 6, classes: int = 3) -> None:
        super().__init__()
        self.rnn = cell(d, h, num_layers=2, batch_first=True)
        self.head = nn.Linear(h, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def seq_batch(n: int = 6, t: int = 5, d: int = 8, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def token_batch(n: int = 6, t: int = 7, vocab: int = 20, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, t), generator=g)
    ids[1, 4:] = 0  # padding
    return ids, torch.randint(0, classes, (n,), generator=g)


def _sample(v, i: int, batch_dim: int = 0):
    if isinstance(v, dict):
        return {k: _sample(a, i, batch_dim) for k, a in v.items()}
    return v.narrow(batch_dim, i, 1)


def brute_force_grads(model: nn.Module, loss_fn, x, y, n: int | None = None,
                      batch_dim: int = 0) -> dict[str, torch.Tensor]:
    """Per-sample gradients by a loop: each sample alone through the model in eval mode;
    name → (n, *shape). x may be a dict (passed as keyword arguments)."""
    was = [(m, m.training) for m in model.modules()]
    model.eval()
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    total = (next(iter(x.values())) if isinstance(x, dict) else x).shape[batch_dim]
    rows = []
    try:
        for i in range(n or total):
            xi, yi = _sample(x, i, batch_dim), y[i:i + 1]
            out = model(**xi) if isinstance(xi, dict) else model(xi)
            gr = torch.autograd.grad(loss_fn(out, yi), [p for _, p in named], allow_unused=True)
            rows.append([torch.zeros_like(p) if q is None else q for (_, p), q in
                         zip(named, gr, strict=True)])
    finally:
        for m, t in was:
            m.training = t
    return {k: torch.stack([r[j] for r in rows]) for j, (k, _) in enumerate(named)}


# ---- Hugging Face models from small random configs (skipped without transformers) -------------
def hf_models():
    """{name: (model, loss_fn, (inputs dict, targets))} for GPT-2, BERT, ViT and T5 (tiny)."""
    import transformers as tf

    torch.manual_seed(0)
    n, t, vocab = 5, 8, 64
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (n, t), generator=g)
    mask = torch.ones(n, t, dtype=torch.long)
    mask[1, 5:] = 0
    mask[3, 3:] = 0
    y = torch.randint(0, 3, (n,), generator=g)

    def lm_loss(out, lab):  # mean over samples of each sample's mean next-token loss
        logits, tgt = out.logits[:, :-1], lab[:, 1:]
        ll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                             reduction="none", ignore_index=-100).reshape(tgt.shape)
        keep = (tgt != -100).float()
        return ((ll * keep).sum(1) / keep.sum(1).clamp_min(1)).mean()

    def cls_loss(out, lab):
        return F.cross_entropy(out["logits"], lab)

    def t5_loss(out, lab):
        return F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), lab.reshape(-1))

    small = dict(vocab_size=vocab)
    gpt2 = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_embd=16, n_head=2, n_positions=16,
                                            bos_token_id=0, eos_token_id=0, **small))
    bert = tf.BertForSequenceClassification(tf.BertConfig(
        num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=3, **small))
    vit = tf.ViTForImageClassification(tf.ViTConfig(
        num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=32,
        image_size=8, patch_size=4, num_channels=3, num_labels=3))
    t5 = tf.T5ForConditionalGeneration(tf.T5Config(
        num_layers=1, num_decoder_layers=1, d_model=16, d_ff=32, num_heads=2, d_kv=8,
        decoder_start_token_id=0, **small))
    for m in (gpt2, bert, vit, t5):
        m.train()
    return {
        "gpt2": (gpt2, lm_loss, ({"input_ids": ids, "attention_mask": mask},
                                 ids.masked_fill(mask == 0, -100))),
        "bert": (bert, cls_loss, ({"input_ids": ids, "attention_mask": mask}, y)),
        "vit": (vit, cls_loss, ({"pixel_values": torch.randn(n, 3, 8, 8, generator=g)}, y)),
        "t5": (t5, t5_loss, ({"input_ids": ids, "attention_mask": mask,
                              "decoder_input_ids": ids[:, :3]}, ids[:, 1:4])),
    }
