"""Size limits for input files, checked before data is loaded.

A user-supplied file can declare a shape far larger than the machine can hold (a crafted .npy
header, a decompression-bomb PNG, a huge .mat variable). Every reader compares the declared
shape with these limits first, so such files fail fast and cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Upper bounds for one read; pass a custom instance to any reader to change them."""

    max_side: int = 2048  # H and W
    max_cr: int = 64  # T of a mask (compression ratio)
    max_measurements: int = 64  # N measurements in one file
    max_scene_frames: int = 512  # F frames of a ground-truth scene (also mask stacks before cropping)
    max_file_bytes: int = 512 * 1024 * 1024
    max_elements: int = 256 * 1024 * 1024  # total values of one array (1 GiB as float32)

    @property
    def max_pixels(self) -> int:
        """Pixel cap for one image, the decompression-bomb guard for PNG/TIFF."""
        return self.max_side * self.max_side


DEFAULT_LIMITS = Limits()
