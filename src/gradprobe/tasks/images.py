"""Image data for SPEC C4–C5: the CIFAR-10 binary reader, an offline stand-in, augmentation.

CIFAR-10 is read from the official *binary* distribution (``cifar-10-batches-bin``; Krizhevsky
2009): each file is a run of fixed 3073-byte records, one label byte (0–9) then 3·32·32 pixel
bytes, channel-major (1024 red, 1024 green, 1024 blue), rows top to bottom. Parsed with numpy;
no data file is ever unpickled and nothing is downloaded at run time. The directory is found
through a config key (``data_dir``) or the environment variable ``GRADPROBE_DATA``.

The stand-in needs no download: scikit-learn's bundled handwritten digits (1797 images of 8×8,
values 0–16, ten classes), resized with bilinear interpolation (16×16×1 by default, the size of
SPEC C4–C5's reference runs) and split 1347 / 450 (train / test) by a seeded permutation.
Every summary names the dataset it used (``ImageData.name``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gradprobe.errors import DataError

RECORD_BYTES = 3073  # 1 label byte + 3·32·32 pixel bytes
CIFAR_DIRNAME = "cifar-10-batches-bin"
CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = ("test_batch.bin",)
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ENV_VAR = "GRADPROBE_DATA"
# per-channel mean / std of the CIFAR-10 training set (0–1 scale), the usual normalisation
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
DATASETS = ("digits", "cifar10")


@dataclass(frozen=True)
class ImageData:
    """A train / test split of normalised images.

    train_x: (n_train, C, H, W) float32, each channel centred and scaled to unit std (train
    statistics); train_y: (n_train,) int64 labels in [0, classes); same for test_*.
    name: what the data is, written into every summary (e.g. "digits 16×16×1 (sklearn stand-in)").
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: int
    name: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(self.train_x.to(device), self.train_y.to(device),
                         self.test_x.to(device), self.test_y.to(device), self.classes, self.name)


# ---- CIFAR-10 binary ------------------------------------------------------------------------
def read_cifar_records(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR-10 binary batch file.

    Returns (images uint8 (n, 3, 32, 32), labels uint8 (n,)). The file must be a whole number
    of 3073-byte records with labels in 0–9, else DataError.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of "
                        f"{RECORD_BYTES}-byte CIFAR-10 records")
    rec = raw.reshape(-1, RECORD_BYTES)
    labels = rec[:, 0].copy()
    if labels.max() > 9:
        raise DataError(f"{path}: label byte {int(labels.max())} is out of range 0–9; "
                        "is this the binary (not the python) distribution?")
    images = rec[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def write_cifar_records(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write (n, 3, 32, 32) uint8 images and (n,) labels in the CIFAR-10 binary format (tests)."""
    images = np.asarray(images, dtype=np.uint8).reshape(len(labels), -1)
    rec = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], images], axis=1)
    if rec.shape[1] != RECORD_BYTES:
        raise ValueError(f"images must be (n, 3, 32, 32); got records of {rec.shape[1]} bytes")
    Path(path).write_bytes(rec.tobytes())


def missing_cifar_message(tried: list[Path]) -> str:
    where = ", ".join(str(p) for p in tried) if tried else "(no data_dir and no $GRADPROBE_DATA)"
    return (
        "CIFAR-10 (binary version) was not found; looked in: " + where + ". "
        f"Download {CIFAR_URL}, unpack it (tar xzf cifar-10-binary.tar.gz) so that "
        f"DIR/{CIFAR_DIRNAME}/{{data_batch_1..5,test_batch}}.bin exist, then pass "
        f"--set data_dir=DIR or export {ENV_VAR}=DIR. "
        "Or use the offline stand-in: --set dataset=digits."
    )


def find_cifar(data_dir: str | None = None) -> Path:
    """The ``cifar-10-batches-bin`` directory under data_dir, else under $GRADPROBE_DATA.

    data_dir may be the parent of ``cifar-10-batches-bin`` or that directory itself. Raises
    DataError with what to download and where to put it when no complete copy is found.
    """
    roots = [data_dir] if data_dir else []
    if not data_dir and os.environ.get(ENV_VAR):
        roots.append(os.environ[ENV_VAR])
    tried = []
    for root in roots:
        base = Path(root).expanduser()
        for cand in (base / CIFAR_DIRNAME, base):
            tried.append(cand)
            if all((cand / f).is_file() for f in CIFAR_TRAIN + CIFAR_TEST):
                return cand
    raise DataError(missing_cifar_message(tried))


def load_cifar10(data_dir: str | None = None, train_limit: int | None = None) -> ImageData:
    """CIFAR-10 (50,000 train / 10,000 test, 3×32×32), normalised per channel."""
    root = find_cifar(data_dir)
    parts = [read_cifar_records(root / f) for f in CIFAR_TRAIN]
    tx = np.concatenate([p[0] for p in parts])
    ty = np.concatenate([p[1] for p in parts])
    vx, vy = read_cifar_records(root / CIFAR_TEST[0])
    if train_limit is not None:
        tx, ty = tx[:train_limit], ty[:train_limit]
    mean = torch.tensor(CIFAR_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).reshape(1, 3, 1, 1)

    def norm(a: np.ndarray) -> Tensor:
        return (torch.from_numpy(a).float() / 255.0 - mean) / std

    return ImageData(norm(tx), torch.from_numpy(ty).long(), norm(vx), torch.from_numpy(vy).long(),
                     10, f"CIFAR-10 32×32×3 ({root})")


# ---- stand-in ---------------------------------------------------------------------------------
def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of (n, C, h, w) images to (n, C, size, size) (no torchvision here)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def load_digits_standin(size: int = 16, channels: int = 1, n_test: int = 450,
                        generator: torch.Generator | None = None) -> ImageData:
    """sklearn's 1797 bundled 8×8 digits, resized to channels×size×size, split by a permutation.

    channels=3 repeats the grey image (a CIFAR-shaped stand-in). Normalised with the train
    split's mean and std (one number: the images are grey).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.int64)
    x = resize(x, size).repeat(1, channels, 1, 1)
    perm = torch.randperm(len(y), generator=generator)
    test, train = perm[:n_test], perm[n_test:]
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return ImageData(x[train], y[train], x[test], y[test], 10,
                     f"digits {size}×{size}×{channels} (sklearn stand-in, "
                     f"{len(train)}/{len(test)} split)")


def load_images(dataset: str, data_dir: str | None = None, *, size: int = 16,
                generator: torch.Generator | None = None,
                train_limit: int | None = None) -> ImageData:
    """'digits' → the stand-in at size×size×1; 'cifar10' → the binary CIFAR-10 reader."""
    if dataset == "digits":
        return load_digits_standin(size=size, generator=generator)
    if dataset == "cifar10":
        return load_cifar10(data_dir, train_limit=train_limit)
    raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


# ---- augmentation -------------------------------------------------------------------------------
def translate(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Shift image i down by dy[i] and right by dx[i] pixels (negative: up / left), zero fill.

    x: (n, C, H, W); dy, dx: (n,) integers with |d| ≤ H, W. One gather for the whole batch.
    """
    n, c, h, w = x.shape
    dev = x.device
    s = int(max(dy.abs().max(), dx.abs().max())) if n else 0
    padded = F.pad(x, (s, s, s, s))  # (n, C, H + 2s, W + 2s)
    rows = torch.arange(h, device=dev).unsqueeze(0) + s - dy.to(dev).unsqueeze(1)  # (n, H)
    cols = torch.arange(w, device=dev).unsqueeze(0) + s - dx.to(dev).unsqueeze(1)  # (n, W)
    idx = torch.arange(n, device=dev).reshape(n, 1, 1, 1)
    ch = torch.arange(c, device=dev).reshape(1, c, 1, 1)
    return padded[idx, ch, rows.reshape(n, 1, h, 1), cols.reshape(n, 1, 1, w)]


def augment(x: Tensor, generator: torch.Generator, shift: int = 4, flip: bool = True) -> Tensor:
    """Random translations by up to `shift` px in each direction (zero fill) and horizontal
    flips with probability ½ (the standard CIFAR augmentation; Balduzzi et al. §6).

    x: (n, C, H, W) → same shape; the random numbers come from `generator` only.
    """
    n = x.shape[0]
    gdev = generator.device
    if flip:
        mask = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device)
        x = torch.where(mask.reshape(n, 1, 1, 1), x.flip(-1), x)
    if shift <= 0:
        return x
    dy = torch.randint(-shift, shift + 1, (n,), generator=generator, device=gdev)
    dx = torch.randint(-shift, shift + 1, (n,), generator=generator, device=gdev)
    return translate(x, dy, dx)
