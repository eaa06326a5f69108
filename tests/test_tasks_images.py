"""Image data (SPEC C4–C5, "Data"): the CIFAR-10 binary reader, the missing-data message, the
digits stand-in and the augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradprobe.errors import DataError
from gradprobe.tasks import images
from gradprobe.tasks.images import (
    CIFAR_DIRNAME,
    CIFAR_TEST,
    CIFAR_TRAIN,
    RECORD_BYTES,
    augment,
    find_cifar,
    load_cifar10,
    load_digits_standin,
    read_cifar_records,
    translate,
)


def _records(rng: np.random.Generator, n: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """n records written by hand, byte by byte: label, then R, G, B planes of 32×32, row-major."""
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pix = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    blob = bytearray()
    for i in range(n):
        blob.append(int(labels[i]))
        for c in range(3):
            for r in range(32):
                blob.extend(bytes(pix[i, c, r]))
    return bytes(blob), pix, labels


def _fake_cifar(root, rng, n=3):
    d = root / CIFAR_DIRNAME
    d.mkdir(parents=True)
    for f in CIFAR_TRAIN + CIFAR_TEST:
        (d / f).write_bytes(_records(rng, n)[0])
    return d


def test_reader_matches_the_records_byte_for_byte(tmp_path):
    rng = np.random.default_rng(0)
    blob, pix, labels = _records(rng, 5)
    assert len(blob) == 5 * RECORD_BYTES
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(blob)
    x, y = read_cifar_records(path)
    assert x.dtype == np.uint8 and x.shape == (5, 3, 32, 32) and y.shape == (5,)
    np.testing.assert_array_equal(x, pix)
    np.testing.assert_array_equal(y, labels)
    raw = np.frombuffer(blob, dtype=np.uint8)
    for i in range(5):  # the layout: label byte, then 1024 red, 1024 green, 1024 blue bytes
        base = i * RECORD_BYTES
        assert y[i] == raw[base]
        assert x[i, 0, 0, 0] == raw[base + 1]
        assert x[i, 0, 0, 31] == raw[base + 32]
        assert x[i, 0, 1, 0] == raw[base + 33]
        assert x[i, 1, 0, 0] == raw[base + 1 + 1024]
        assert x[i, 2, 31, 31] == raw[base + RECORD_BYTES - 1]
    # the writer used by other tests produces the same bytes
    images.write_cifar_records(tmp_path / "again.bin", pix, labels)
    assert (tmp_path / "again.bin").read_bytes() == blob


def test_reader_refuses_malformed_files(tmp_path):
    bad = tmp_path / "short.bin"
    bad.write_bytes(b"\x01" * (RECORD_BYTES + 7))
    with pytest.raises(DataError, match="3073-byte"):
        read_cifar_records(bad)
    pickled = tmp_path / "label.bin"
    pickled.write_bytes(bytes([200]) + b"\x00" * (RECORD_BYTES - 1))
    with pytest.raises(DataError, match="out of range"):
        read_cifar_records(pickled)


def test_find_cifar_by_config_key_and_environment(tmp_path, monkeypatch):
    d = _fake_cifar(tmp_path / "data", np.random.default_rng(1))
    monkeypatch.delenv("GRADPROBE_DATA", raising=False)
    assert find_cifar(str(tmp_path / "data")) == d
    assert find_cifar(str(d)) == d  # the batches directory itself
    monkeypatch.setenv("GRADPROBE_DATA", str(tmp_path / "data"))
    assert find_cifar(None) == d
    data = load_cifar10(None)
    assert data.train_x.shape == (15, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    assert data.train_y.dtype == torch.int64 and int(data.train_y.max()) <= 9
    assert "CIFAR-10" in data.name


def test_missing_cifar_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADPROBE_DATA", raising=False)
    with pytest.raises(DataError) as err:
        find_cifar(str(tmp_path / "nowhere"))
    msg = str(err.value)
    for needle in ("cifar-10-binary.tar.gz", CIFAR_DIRNAME, "data_dir", "GRADPROBE_DATA",
                   str(tmp_path / "nowhere"), "dataset=digits"):
        assert needle in msg
    with pytest.raises(DataError, match="no data_dir"):
        find_cifar(None)
    # an incomplete copy is missing too
    d = _fake_cifar(tmp_path / "partial", np.random.default_rng(2))
    (d / "test_batch.bin").unlink()
    with pytest.raises(DataError):
        find_cifar(str(tmp_path / "partial"))


@pytest.mark.parametrize("name", ["looks_linear", "convnet_shattering"])
def test_missing_cifar_exits_2_and_writes_nothing(name, tmp_path, monkeypatch, capsys):
    from gradprobe import cli

    monkeypatch.delenv("GRADPROBE_DATA", raising=False)
    out = tmp_path / "runs"
    rc = cli.main(["run", name, "--scale", "smoke", "--out", str(out), "--set",
                   "dataset=cifar10", "--set", f"data_dir={tmp_path / 'nowhere'}"])
    assert rc == 2
    captured = capsys.readouterr()
    assert "cifar-10-binary.tar.gz" in captured.err + captured.out
    assert "Traceback" not in captured.err
    assert not out.exists() or not any(out.rglob("*"))


def test_digits_standin_is_split_normalised_and_seeded():
    a = load_digits_standin(16, generator=torch.Generator().manual_seed(3))
    b = load_digits_standin(16, generator=torch.Generator().manual_seed(3))
    assert a.train_x.shape == (1347, 1, 16, 16) and a.test_x.shape == (450, 1, 16, 16)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert abs(float(a.train_x.mean())) < 1e-4 and abs(float(a.train_x.std()) - 1) < 1e-3
    assert set(a.train_y.tolist()) == set(range(10)) and a.classes == 10
    assert "digits 16×16×1" in a.name
    c = load_digits_standin(32, channels=3, generator=torch.Generator().manual_seed(3))
    assert c.shape == (3, 32, 32)
    assert torch.equal(c.train_x[:, 0], c.train_x[:, 2])


def test_translate_matches_a_loop_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 5, 7, generator=g)
    dy = torch.tensor([0, 1, -2, 3, 0, -1])
    dx = torch.tensor([0, -1, 2, 0, 3, -3])
    out = translate(x, dy, dx)
    ref = torch.zeros_like(x)
    for i in range(6):
        for r in range(5):
            for c in range(7):
                rs, cs = r - int(dy[i]), c - int(dx[i])
                if 0 <= rs < 5 and 0 <= cs < 7:
                    ref[i, :, r, c] = x[i, :, rs, cs]
    assert torch.equal(out, ref)


def test_augment_flips_and_shifts_within_bounds():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 8, 8, generator=g)
    assert torch.equal(augment(x, g, shift=0, flip=False), x)
    f = augment(x, torch.Generator().manual_seed(2), shift=0, flip=True)
    same = (f == x).flatten(1).all(1)
    flipped = (f == x.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54
    ones = torch.ones(256, 1, 16, 16)
    s = augment(ones, torch.Generator().manual_seed(3), shift=2, flip=False)
    kept = s.flatten(1).sum(1)  # (16 − |dy|)(16 − |dx|) pixels survive a shift
    assert float(kept.min()) >= 14 * 14 and float(kept.max()) == 256
    again = augment(ones, torch.Generator().manual_seed(3), shift=2, flip=False)
    assert torch.equal(s, again)


@pytest.mark.parametrize("name", ["looks_linear", "convnet_shattering"])
def test_experiments_run_on_a_cifar_fixture(name, tmp_path, monkeypatch):
    """The CIFAR-10 path end to end (3×32×32 inputs) on a small generated binary copy."""
    from gradprobe.runs.store import execute, resolve

    _fake_cifar(tmp_path / "data", np.random.default_rng(4), n=60)
    monkeypatch.setenv("GRADPROBE_DATA", str(tmp_path / "data"))
    s = execute(resolve(name, "smoke", overrides={"dataset": "cifar10"}, out=tmp_path / "runs",
                        device="cpu"), quiet=True)
    assert s["status"] == "complete", s.get("error")
    assert s["results"]["dataset"].startswith("CIFAR-10 32×32×3")
