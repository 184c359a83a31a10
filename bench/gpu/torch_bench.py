#!/usr/bin/env python3
"""PyTorch's GroupNorm on the GPU, timed exactly like bench/gpu/gpu_bench.cu times gnv's kernels.

Each timed call follows a 256 MiB write that evicts L2 and sits alone between two CUDA events; the
median over the repetitions is reported (small problems also without the flush: "hot"). Forward is
torch.nn.functional.group_norm; backward is torch.autograd.grad through it (what a network pays,
including the channels_last -> contiguous copy PyTorch's CUDA kernel needs) and, for contiguous
inputs, aten's native_group_norm_backward called directly. Also a 1 GiB device-to-device copy.

    torch_bench.py [--json FILE] [--quick]      exit 77 when torch or a GPU is missing
"""
import argparse
import json
import sys

SHAPES = [(16, 512, 64, 64, "f32"), (8, 256, 128, 128, "bf16"), (2, 320, 64, 64, "f16"), (64, 128, 56, 56, "f32")]
GROUPS = 32
EPS = 1e-5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - any import failure means: no PyTorch here
        print(f"torch_bench: skipped: cannot import torch ({e})")
        return 77
    if not torch.cuda.is_available():
        print("torch_bench: skipped: torch sees no CUDA device")
        return 77
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    print(f"device: {props.name}, torch {torch.__version__}")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def median_us(fn, reps, do_flush=True):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        ts = []
        for i in range(reps):
            if do_flush:
                flush.fill_(i & 0xFF)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            ts.append(start.elapsed_time(stop) * 1e3)
        ts.sort()
        return ts[len(ts) // 2], ts[0]

    recs = []
    src = torch.rand(1 << 28, device=dev)  # 1 GiB of float32
    dst = torch.empty_like(src)
    us, mn = median_us(lambda: dst.copy_(src), 20, False)
    copy_gbps = 2.0 * src.numel() * 4 / (us * 1e3)
    recs.append(dict(impl="torch", shape="1GiB", dtype="-", layout="-", dir="copy", variant="Tensor.copy_",
                     median_us=us, min_us=mn, bytes=2.0 * src.numel() * 4))
    print(f"copy 1 GiB (torch copy_): {us:.1f} us, {copy_gbps:.0f} GB/s (read + write)")
    del src, dst

    dtypes = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
    shapes = SHAPES[:3] if args.quick else SHAPES
    for (N, C, H, W, dt) in shapes:
        dtype = dtypes[dt]
        numel = N * C * H * W
        elem = torch.tensor([], dtype=dtype).element_size()
        small = 2 * numel * elem < (32 << 20)
        reps = 200 if small else 50
        shape = f"{N}x{C}x{H}x{W}"
        for layout in ("nchw", "nhwc"):
            mf = torch.contiguous_format if layout == "nchw" else torch.channels_last
            x = (torch.randn(N, C, H, W, device=dev) + 0.5).to(dtype).contiguous(memory_format=mf)
            w = (1 + 0.1 * torch.randn(C, device=dev)).to(dtype)
            b = (0.1 * torch.randn(C, device=dev)).to(dtype)
            base = dict(impl="torch", shape=shape, dtype=dt, layout=layout)
            variants = [(True, "")] + ([(False, " hot (L2)")] if small else [])
            for do_flush, suffix in variants:
                us, mn = median_us(lambda: F.group_norm(x, GROUPS, w, b, EPS), reps, do_flush)
                recs.append(dict(base, dir="fwd", variant="F.group_norm" + suffix, median_us=us, min_us=mn,
                                 bytes=2.0 * numel * elem))
            xg, wg, bg = (t.detach().clone().requires_grad_() for t in (x, w, b))  # clone keeps channels_last
            y = F.group_norm(xg, GROUPS, wg, bg, EPS)
            dy = torch.randn_like(y)
            for do_flush, suffix in variants:
                us, mn = median_us(lambda: torch.autograd.grad(y, (xg, wg, bg), dy, retain_graph=True), reps, do_flush)
                recs.append(dict(base, dir="bwd", variant="autograd" + suffix, median_us=us, min_us=mn,
                                 bytes=3.0 * numel * elem))
            if layout == "nchw":
                _, mean, rstd = torch.ops.aten.native_group_norm(x, w, b, N, C, H * W, GROUPS, EPS)
                dyc = dy.contiguous()
                us, mn = median_us(lambda: torch.ops.aten.native_group_norm_backward(
                    dyc, x, mean, rstd, w, N, C, H * W, GROUPS, [True, True, True]), reps)
                recs.append(dict(base, dir="bwd", variant="aten native_group_norm_backward", median_us=us,
                                 min_us=mn, bytes=3.0 * numel * elem))
            del x, w, b, xg, wg, bg, y, dy
            torch.cuda.empty_cache()

    print(f"\n{'shape':16} {'dtype':5} {'layout':6} {'dir':4} {'variant':34} {'median_us':>10} {'GB/s':>8}")
    for r in recs:
        print(f"{r['shape']:16} {r['dtype']:5} {r['layout']:6} {r['dir']:4} {r['variant']:34} "
              f"{r['median_us']:10.2f} {r['bytes'] / (r['median_us'] * 1e3):8.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=props.name, torch=torch.__version__, copy_gbps=copy_gbps, records=recs), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
