"""One weights loader (qsci.deploy.weights): every format, read once, one error vocabulary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from qsci import zoo
from qsci.deploy import weights
from qsci.deploy.packing import save_packed
from qsci.errors import InputFileError
from qsci.models import create_model
from qsci.models.checkpoints import save_model
from training.checkpointing import save_checkpoint

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Code:
    """A pickled object whose loading would call a function (harmless here: len)."""

    def __reduce__(self):
        return (len, ("x",))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = create_model("qsci-t-4bit", units=1, per_channel_act=False)
    model(torch.rand(1, 1, 2, 8, 8))  # initialise the quantizer steps
    return model.eval()


@pytest.fixture
def files(tiny, tmp_path) -> dict[str, Path]:
    """The same network in each format the loader accepts."""
    out = {"packed": save_packed(tiny, tmp_path / "packed.pt"),
           "ours": save_model(tmp_path / "ours.pth", tiny),
           "training": save_checkpoint(tmp_path / "ckpt.pt", model=tiny, model_config=tiny.config.to_dict(),
                                       optimizer=None, step=3, samples=12, train_config={})}
    official = tmp_path / "authors.pth"  # bare, DataParallel-prefixed (the S layout is checked in test_checkpoints)
    torch.save({f"module.{k}": v for k, v in tiny.state_dict().items()}, official)
    out["official"] = official
    return out


def test_each_format_is_recognised_and_loads_the_same_network(tiny, files):
    x = torch.rand(1, 1, 2, 8, 8)
    with torch.no_grad():
        ref = tiny(x)
        for kind in ("packed", "ours", "training"):
            wf = weights.open_weights(files[kind])
            assert wf.kind == kind and wf.config == tiny.config.to_dict()
            assert torch.equal(weights.load_model(wf)(x), ref), kind
    wf = weights.open_weights(files["official"])
    assert wf.kind == "official" and wf.config is None
    assert set(wf.state_dict()) == set(tiny.state_dict())  # `module.` prefixes removed


def test_the_zoo_reads_each_weights_file_once(files, monkeypatch):
    calls = []
    real = torch.load

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    for kind in ("packed", "ours", "training"):
        calls.clear()
        zoo.load_weights_file(files[kind])
        assert calls == [files[kind]], kind


def test_one_error_vocabulary_naming_the_file(tmp_path, files):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    code = tmp_path / "code.pth"
    torch.save({"w": _Code()}, code)
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "qsci-packed-v1", "config": {"preset": "t", "bits": 4, "units": 1,
                                                      "per_channel_act": False}, "qweights": {}, "tensors": {}}, wrong)
    cases = {
        tmp_path / "missing.pt": "missing.pt: checkpoint file not found",
        junk: "junk.pth: not a readable weights-only PyTorch checkpoint (UnpicklingError)",
        code: "code.pth: refused: the checkpoint holds pickled Python objects",
        wrong: "wrong.pt: ",
        files["ours"]: None,
    }
    for path, start in cases.items():
        if start is None:
            with pytest.raises(InputFileError, match=r"^ours\.pth: not a packed Q-SCI checkpoint"):
                weights.read_packed(path)
            continue
        with pytest.raises(InputFileError) as err:
            weights.load_model(path)
        text = str(err.value)
        assert text.startswith(start) and "\n" not in text and err.value.path == str(path), text


def test_torch_load_is_called_in_one_place_only():
    """Every weights file goes through qsci/deploy/weights.py (weights_only=True there)."""
    calls = []
    for path in [*REPO.glob("qsci/**/*.py"), *REPO.glob("training/**/*.py"), *REPO.glob("ui/**/*.py"),
                 REPO / "app.py"]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"torch\.load\(", code) and "`" not in code:
                calls.append(f"{path.relative_to(REPO)}:{n}")
    assert [c.split(":")[0] for c in calls] == ["qsci/deploy/weights.py"], calls
