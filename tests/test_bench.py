"""Benchmark: JSON shape, backend checks, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from qsci.bench import benchmark, parse_size
from qsci.cli import main
from qsci.errors import QSCIError

KEYS = {"model", "backend", "median_s", "peak_rss_mb", "weights", "threads", "size"}


@pytest.fixture(autouse=True)
def _restore_threads(tmp_path, monkeypatch):
    """Hermetic: no trained checkpoints (the zoo looks in QSCI_CHECKPOINTS), threads restored."""
    monkeypatch.setenv("QSCI_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_parse_size():
    assert parse_size("256x128x8") == (8, 256, 128)
    for bad in ("256x256", "axbxc", "255x256x8"):
        with pytest.raises(QSCIError):
            parse_size(bad)


@pytest.mark.parametrize("name,backend,used", [("qsci-t-4bit", "int8", "int8"), ("qsci-t-fp32", "bf16", "bf16"),
                                               ("qsci-t-2bit", "fakequant", "fakequant")])
def test_benchmark_result(name, backend, used):
    r = benchmark(name, backend, threads=1, size=(8, 16, 16), repeats=2, warmup=0)
    assert KEYS <= set(r)
    assert r["backend"].startswith(used) and r["weights"] == "random" and r["threads"] == 1
    assert r["size"] == [8, 16, 16] and r["median_s"] > 0 and r["peak_rss_mb"] > 0
    json.dumps(r)


def test_backend_mismatch_is_a_user_error():
    with pytest.raises(QSCIError, match="quantized model"):
        benchmark("qsci-t-fp32", "int8", threads=1, size=(8, 16, 16), repeats=1, warmup=0)
    with pytest.raises(QSCIError, match="full-precision"):
        benchmark("qsci-t-4bit", "bf16", threads=1, size=(8, 16, 16), repeats=1, warmup=0)


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["bench", "--model", "qsci-t-8bit", "--backend", "int8", "--threads", "1",
               "--size", "16x16x8", "--repeats", "1", "--warmup", "0", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert KEYS <= set(r) and r["model"] == "qsci-t-8bit" and r["size"] == [8, 16, 16]
    assert "median" in capsys.readouterr().out
    assert main(["bench", "--model", "nope", "--size", "16x16x8"]) == 2
    assert "unknown" in capsys.readouterr().err


def test_bench_times_the_engine_runner(monkeypatch):
    """bench calls NetworkRunner.__call__ (the engine's code path), once per warm-up and repeat."""
    from qsci.runners import NetworkRunner

    calls = []
    orig = NetworkRunner.__call__

    def spy(self, meas, mask, progress=None):
        calls.append((self.backend, meas.shape, mask.shape))
        return orig(self, meas, mask, progress)

    monkeypatch.setattr(NetworkRunner, "__call__", spy)
    r = benchmark("qsci-t-4bit", "int8", threads=1, size=(8, 16, 16), repeats=2, warmup=1)
    assert calls == [("int8", (1, 16, 16), (8, 16, 16))] * 3 and r["backend"] == "int8"
    calls.clear()
    r = benchmark("qsci-t-fp32", "bf16", threads=1, size=(8, 16, 16), repeats=1, warmup=0)
    assert calls == [("bf16", (1, 16, 16), (8, 16, 16))] and r["backend"] == "bf16-cl"


def test_bench_uses_the_zoo_runner_for_trained_models(monkeypatch):
    """A zoo method with weights is timed through qsci.zoo.load_runner (the app's cached runner)."""
    import numpy as np

    from qsci import zoo

    class FakeRunner:
        backend, model = "fp32", None

        def __call__(self, meas, mask, progress=None):
            return np.zeros((len(meas), *mask.shape), np.float32)

    class Info:
        source, available = "ours", True

    asked = []
    monkeypatch.setattr(zoo, "get_method", lambda name: Info())
    monkeypatch.setattr(zoo, "load_runner", lambda name, backend="auto", checkpoint=None: asked.append((name, backend)) or FakeRunner())
    r = benchmark("qsci-t-fp32", "fp32", threads=1, size=(8, 16, 16), repeats=1, warmup=0)
    assert asked == [("qsci-t-fp32", "fp32")] and r["weights"] == "trained" and r["backend"] == "fp32-cl"


def test_bench_times_the_weights_of_a_checkpoint_file(tmp_path, capsys):
    """`--checkpoint FILE` times those weights (as `reconstruct --checkpoint` runs them), labelled with the file."""
    from qsci.bench import calibrate
    from qsci.deploy.packing import save_packed
    from qsci.models import create_model

    model = create_model("qsci-t-4bit", in_ch=4, units=1, per_channel_act=False).eval()
    calibrate(model, (8, 16, 16), seed=0)
    path = save_packed(model, tmp_path / "mine-4bit.pt")
    out = tmp_path / "r.json"
    assert main(["bench", "--model", "qsci-t-4bit", "--checkpoint", str(path), "--backend", "int8",
                 "--threads", "1", "--size", "16x16x8", "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["weights"] == "file mine-4bit.pt" and r["backend"].startswith("int8") and r["median_s"] > 0
    missing = tmp_path / "nope.pt"
    assert main(["bench", "--model", "qsci-t-4bit", "--checkpoint", str(missing), "--size", "16x16x8"]) != 0
    assert "nope.pt" in capsys.readouterr().err
