"""Shared test set-up: the public data folder is required, never silently skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_default = REPO.parent / "shared" / "data"
os.environ.setdefault("QSCI_DATA_DIR", str(_default))
DATA_DIR = Path(os.environ["QSCI_DATA_DIR"])

if not (DATA_DIR / "simulation" / "drop8_cacti.mat").is_file():
    raise pytest.UsageError(
        f"QSCI_DATA_DIR={DATA_DIR} does not hold the benchmark files "
        "(simulation/drop8_cacti.mat missing). Point QSCI_DATA_DIR at the shared data folder."
    )
# The method's reference files (spec, authors' checkpoint schemas) sit beside the data folder.
REFERENCE_DIR = Path(os.environ.get("QSCI_REFERENCE_DIR", DATA_DIR.parent / "reference"))


@pytest.fixture(scope="session")
def reference_file():
    """Path of a reference file; a missing one fails the test with where it was looked for."""
    def find(name: str) -> Path:
        path = REFERENCE_DIR / name
        if not path.is_file():
            pytest.fail(f"{path} is missing: set QSCI_REFERENCE_DIR to the folder holding {name}")
        return path
    return find


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Downloads in tests never touch the user's ~/.cache."""
    monkeypatch.setenv("QSCI_CACHE", str(tmp_path_factory.getbasetemp() / "qsci-cache"))


@pytest.fixture
def fp32_intermediates():
    """int8 kernels that feed the C passes write fp32 instead of bf16 (`native.set_bf16_mids`), so a
    test can hold the int8 graph to fake-quant up to float rounding."""
    from qsci.deploy.int8 import native

    native.set_bf16_mids(False)
    yield
    native.set_bf16_mids(True)


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared machine: extra OpenMP threads only add barrier waits."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
