"""Would a real inference engine beat our fused int8 graph? OpenVINO on the same QAT model.

The QAT model is traced with each LSQ quantizer written as torch's own fake-quantize op (an
export view: same step, rounded zero point and code range), so OpenVINO's converter sees
FakeQuantize nodes and its low-precision passes can run u8/i8 kernels. The OpenVINO model is
compiled with static shapes and timed in the same process, alternating, against the engine's
torch int8 network and the bf16 channels-last full-precision network (network forward only, no
GAP-TV step). OpenVINO is not a dependency of the project: `pip install openvino` first.

    python -m scripts.openvino_probe --model qsci-t-8bit --threads 1 --rounds 5

Prints one JSON object: median wall / process-CPU seconds per runner, the load average before
and after, the PSNR between the OpenVINO and the fake-quant outputs, and the node census of
the compiled OpenVINO graph (which ops run at which precision).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time

import torch

from qsci.quant import lsq
from qsci.zoo import load_runner
from scripts.speedcheck import load_average


def _act_as_torch_op(self: lsq.ActQuantizer, x: torch.Tensor) -> torch.Tensor:
    qmin, qmax = self.qrange()
    step, zero_point, _, _ = self.quant_params()
    if step.numel() == 1:
        return torch.fake_quantize_per_tensor_affine(x, float(step), int(zero_point), qmin, qmax)
    return torch.fake_quantize_per_channel_affine(x, step.float(), zero_point.int(), self.ch_axis % x.ndim, qmin, qmax)


def _weight_as_torch_op(self: lsq.QLayerMixin) -> torch.Tensor:
    qn, qp = lsq.signed_range(self.bits)
    zeros = torch.zeros(self.weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(self.weight.detach(), self.alpha.detach().float(), zeros, 0, qn, qp)


@contextlib.contextmanager
def torch_fake_quant_ops():
    """While tracing: quantizers as torch.fake_quantize_* (OpenVINO reads them as FakeQuantize)."""
    saved = lsq.ActQuantizer.forward, lsq.QLayerMixin.quant_weight
    lsq.ActQuantizer.forward, lsq.QLayerMixin.quant_weight = _act_as_torch_op, _weight_as_torch_op
    try:
        yield
    finally:
        lsq.ActQuantizer.forward, lsq.QLayerMixin.quant_weight = saved


def runtime_ops(compiled) -> dict[str, int]:
    """How many nodes of each (type, precision) the compiled graph runs, e.g. 'Convolution u8'."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = f"{info['layerType'].astype(str)} {info['runtimePrecision'].astype(str)}"
        if not kind.startswith(("Const", "Input", "Output")):
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _timed(fn, rounds_out: list) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    rounds_out.append((time.perf_counter() - wall, time.process_time() - cpu))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="qsci-t-8bit", help="a quantized zoo model with trained weights")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=256, help="square frame size (8 frames)")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    try:
        import openvino as ov  # optional: only this probe uses it
    except ImportError:
        print("openvino is not installed: pip install openvino", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    x = torch.rand(1, 1, 8, args.size, args.size)
    fq = load_runner(args.model, "fakequant").model.eval()
    with torch.no_grad(), torch_fake_quant_ops():
        reference = fq(x).numpy()
        graph = ov.convert_model(fq, example_input=x, input=[tuple(x.shape)])
    compiled = ov.Core().compile_model(graph, "CPU", {
        "INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32", "SNIPPETS_MODE": "DISABLE"})
    request = compiled.create_infer_request()
    xn = x.numpy()
    out = request.infer([xn])[0]
    psnr = float(10 * torch.log10(1 / torch.tensor(((out - reference) ** 2).mean())))
    int8_net = load_runner(args.model, "int8").model
    float_net = load_runner(args.model.rsplit("-", 1)[0] + "-fp32", "bf16").model
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    runners = {
        "openvino": lambda: request.infer([xn]),
        "torch-int8": lambda: int8_net(x),
        "torch-bf16-cl": lambda: float_net(x_cl),
    }
    times: dict[str, list] = {k: [] for k in runners}
    load_before = load_average()
    with torch.no_grad():
        for fn in runners.values():
            fn()  # warm-up
        for _ in range(args.rounds):
            for name, fn in runners.items():
                if name == "torch-bf16-cl":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        _timed(fn, times[name])
                else:
                    _timed(fn, times[name])
    report = {
        "model": args.model, "threads": args.threads, "size": f"{args.size}x{args.size}x8",
        "load_before": load_before, "load_after": load_average(),
        "psnr_openvino_vs_fakequant_db": round(psnr, 2), "openvino_ops": runtime_ops(compiled),
        "median_s": {k: {"wall": round(statistics.median(w for w, _ in v), 3),
                         "cpu": round(statistics.median(c for _, c in v), 3)} for k, v in times.items()},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
