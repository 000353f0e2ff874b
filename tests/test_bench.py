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
