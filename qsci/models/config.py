"""`ModelConfig`: everything needed to rebuild a network, stored inside every checkpoint."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from qsci.errors import QSCIError

# preset -> (in_ch C, units U, group_num G)
PRESETS: dict[str, tuple[int, int, int]] = {"t": (16, 4, 2), "s": (32, 8, 2), "b": (64, 8, 4)}
VALID_BITS = (2, 3, 4, 5, 6, 7, 8, 32)
# where the network starts: the paper's normalized measurement, or a GAP-TV estimate (our extension)
INITS = ("measurement", "gaptv")
NAME_PATTERN = re.compile(r"qsci-(?P<preset>[a-z]+)-(?:(?P<family>gap)-)?(?P<bits>fp32|\d+bit)")


@dataclass
class ModelConfig:
    """Sizes and bit width of one EfficientSCI / Q-SCI network.

    `preset` fills `in_ch`, `units`, `group_num` where they are left as None ("free" sizes
    override them). `bits` 32 = full precision, 8 = quantized graph, < 8 adds 8-bit side branches.
    `per_channel_act`: per-input-channel activation steps (authors' files) or per-tensor
    (runnable on integer kernels).
    """

    preset: str = "s"
    in_ch: int | None = None
    units: int | None = None
    group_num: int | None = None
    bits: int = 32
    per_channel_act: bool = True
    heads: int = 4
    color_ch: int = 1
    # warm start (our extension, README "Warm-start family"); the defaults are the paper's network
    init: str = "measurement"  # initial estimate fed to the network: see INITS
    init_iters: int = 40  # GAP-TV iterations when init == "gaptv"
    residual: bool = False  # output = initial estimate + network
    dc: bool = False  # final data-consistency projection x + Phi^T((y - A x) / sum Phi^2)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS and None in (self.in_ch, self.units, self.group_num):
            raise QSCIError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)} or give all sizes")
        base = PRESETS.get(self.preset, (None, None, None))
        self.in_ch = int(self.in_ch if self.in_ch is not None else base[0])
        self.units = int(self.units if self.units is not None else base[1])
        self.group_num = int(self.group_num if self.group_num is not None else base[2])
        self.bits = int(self.bits)
        if self.bits not in VALID_BITS:
            raise QSCIError(f"bits must be one of {VALID_BITS}, got {self.bits}")
        if self.init not in INITS:
            raise QSCIError(f"init must be one of {INITS}, got {self.init!r}")
        self.init_iters = int(self.init_iters)
        if self.init == "gaptv" and self.init_iters < 1:
            raise QSCIError(f"init_iters must be >= 1, got {self.init_iters}")
        if self.color_ch != 1:
            raise QSCIError("only grayscale (color_ch=1) networks are supported")
        g = 4 * self.in_ch // max(self.group_num, 1)
        if self.in_ch < 1 or self.units < 1 or self.group_num < 1 or (4 * self.in_ch) % self.group_num \
                or g % (2 * self.heads):
            raise QSCIError(
                f"invalid sizes in_ch={self.in_ch}, units={self.units}, group_num={self.group_num}: "
                f"4*in_ch/group_num must be a multiple of {2 * self.heads}"
            )

    @property
    def family(self) -> str:
        """"" for the paper's network, "gap" for the GAP-TV warm-start family."""
        return "gap" if self.init == "gaptv" else ""

    @property
    def name(self) -> str:
        """Registry-style name, e.g. `qsci-s-4bit`, `qsci-s-fp32` or `qsci-t-gap-4bit`."""
        family = f"{self.family}-" if self.family else ""
        return f"qsci-{self.preset}-{family}" + ("fp32" if self.bits == 32 else f"{self.bits}bit")

    @staticmethod
    def parse_name(name: str) -> dict:
        """`qsci-<preset>[-gap]-<fp32|Nbit>` -> {"preset", "family", "bits"}; the inverse of `.name`."""
        m = NAME_PATTERN.fullmatch(name)
        if not m:
            raise QSCIError(f"{name!r} is not a model name of the form qsci-<preset>[-gap]-<fp32|Nbit>")
        bits = 32 if m["bits"] == "fp32" else int(m["bits"][:-3])
        return {"preset": m["preset"], "family": m["family"] or "", "bits": bits}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise QSCIError(f"model config has unknown fields {unknown}")
        return cls(**d)
