import torch

from qsci.tiling import run_tiled, tile_size_for


def test_no_tiling_within_budget():
    assert tile_size_for(8, 256, 256) is None


def test_tile_size_shrinks_with_cr():
    t10, t50 = tile_size_for(10, 512, 512), tile_size_for(50, 512, 512)
    assert t10 is not None and t50 is not None and t50 < t10
    assert t50 % 8 == 0 and 50 * t50 * t50 <= 8 * 256 * 256


def test_tiled_pointwise_function_is_exact():
    x = torch.rand(1, 1, 4, 100, 130)
    out = run_tiled(lambda a: a[:, 0] * 2 + 1, x, tile=48, overlap=8)
    assert out.shape == (1, 4, 100, 130)
    assert torch.allclose(out, x[:, 0] * 2 + 1, atol=1e-5)
