"""The app and the CLI ask for sleeping OpenMP threads before torch loads (qsci/threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _policy_after(code: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("entry", [
    "import app",  # the Gradio app module (Hugging Face Spaces runs it)
    "from qsci.cli import main\ntry:\n    main(['models'])\nexcept SystemExit:\n    pass",  # python -m qsci
])
def test_front_ends_set_passive_threads_before_torch(entry):
    code = f"{entry}\nimport os, sys\nprint(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    policy, _ = _policy_after(code).split()
    assert policy == "PASSIVE"


def test_a_users_choice_and_a_loaded_torch_are_respected():
    code = ("from qsci.threads import prefer_passive_omp_threads as p\nimport os\n"
            "print(p(), os.environ.get('OMP_WAIT_POLICY'))")
    assert _policy_after(code, OMP_WAIT_POLICY="ACTIVE") == "True ACTIVE"
    late = ("import torch\nfrom qsci.threads import prefer_passive_omp_threads as p\nimport os\n"
            "print(p(), os.environ.get('OMP_WAIT_POLICY'))")
    assert _policy_after(late) == "False None"
