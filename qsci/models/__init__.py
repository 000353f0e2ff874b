"""EfficientSCI / Q-SCI networks, their configs and the model registry."""

from qsci.models.config import PRESETS, ModelConfig
from qsci.models.efficientsci import EfficientSCI
from qsci.models.qsci_net import QSCINet, init_from_fp
from qsci.models.registry import build_model, create_model, get_config, list_models, register_model
from qsci.models.checkpoints import save_model  # noqa: E402 (needs registry)

__all__ = [
    "PRESETS", "ModelConfig", "EfficientSCI", "QSCINet", "init_from_fp",
    "build_model", "create_model", "get_config", "list_models", "register_model",
    "save_model",
]
