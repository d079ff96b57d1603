"""Compile the Triton kernels for a GPU target without a GPU and report their resources.

Compiles ``bridge_kernel`` (mean, step, bridge step, target) and ``final_step_kernel`` for the layouts of
the benchmark and the tests with Triton's own compiler and ptxas, for sm_90 (H100/H200) by
default, and prints registers per thread, spilled bytes and shared memory per variant. A
kernel that does not compile fails here, on a machine with no GPU, before any device time is
spent; spills show up as a nonzero ``stack`` column (local memory).

    python bench/triton_resources.py              # sm_90
    python bench/triton_resources.py --arch 80    # A100

The last report is bench/results/triton-resources-sm90.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    raise SystemExit("unset TRITON_INTERPRET: this script compiles for the GPU")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

import omegabridge as ob  # noqa: E402
from omegabridge.kernels import bridge, final_step  # noqa: E402
from omegabridge.kernels.plan import build_plan  # noqa: E402
from layouts import adult_like, layouts  # noqa: E402

NUM_WARPS = bridge.GPU_SETTINGS["num_warps"]

POINTER = {"fp32": "*fp32", "bf16": "*bf16", "fp16": "*fp16"}


def _bridge_signature(input_type: str, drift_type: str) -> dict:
    return {
        "input_ptr": POINTER[input_type], "input_stride": "i32", "drift_ptr": POINTER[drift_type], "drift_stride": "i32",
        "out_ptr": "*fp32", "out_stride": "i32", "target_ptr": "*fp32", "target_stride": "i32",
        "previous_ptr": "*fp32", "previous_stride": "i32", "spread_ptr": "*fp32", "s_ptr": "*fp32", "c_ptr": "*fp32", "noise_scale_ptr": "*fp32", "items_ptr": "*i32", "parameters_ptr": "*fp32",
        "parameters_stride": "i32", "quadrature_ptr": "*fp32", "rows_total": "i32", "item_count": "i32",
        "remaining": "fp32", "increment": "fp32", "weight": "fp32", "seed_low": "i32", "seed_high": "i32", "step_index": "i32",
        "offset_low": "i32", "offset_high": "i32",
        "MODE": "constexpr", "HAS_DRIFT": "constexpr", "HAS_PREVIOUS": "constexpr", "KINDS": "constexpr",
        "CLASSES": "constexpr", "ROWS_PER_PROGRAM": "constexpr", "TILE": "constexpr", "WIDE_OFFSETS": "constexpr",
    }


def _final_signature(drift_type: str) -> dict:
    return {
        "z_ptr": "*fp32", "z_stride": "i32", "drift_ptr": POINTER[drift_type], "drift_stride": "i32",
        "out_ptr": "*fp32", "out_stride": "i32", "items_ptr": "*i32", "parameters_ptr": "*fp32",
        "parameters_stride": "i32", "lattice_ptr": "*fp64", "lattice_stride": "i32", "rows_total": "i32",
        "item_count": "i32", "remaining": "fp32", "seed_low": "i32", "seed_high": "i32", "step_index": "i32",
        "offset_low": "i32", "offset_high": "i32",
        "HAS_DRIFT": "constexpr", "KINDS": "constexpr", "CLASSES": "constexpr", "ROWS_PER_PROGRAM": "constexpr",
        "TILE": "constexpr",
    }


def compile_variant(kernel, signature: dict, constexprs: dict, target: GPUTarget, attrs: dict | None = None):
    """Compile one variant; its resources, compile seconds and cubin (``attrs``: argument attributes
    such as the divisibility a launch specialises on, bench/instruction_counts.py)."""
    source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    start = time.perf_counter()
    compiled = triton.compile(source, target=target, options={"num_warps": NUM_WARPS})
    seconds = time.perf_counter() - start
    registers, stack = _resource_usage(compiled.asm["cubin"])
    return {"registers": registers, "stack": stack, "shared": compiled.metadata.shared, "seconds": seconds,
            "cubin": compiled.asm["cubin"]}


def _resource_usage(cubin: bytes) -> tuple[str, str]:
    """(registers per thread, stack frame bytes) from cuobjdump's resource report of the cubin.

    A nonzero stack frame means local memory: spilled registers or arrays the compiler could
    not keep in registers.
    """
    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        report = subprocess.run([str(cuobjdump), "--dump-resource-usage", handle.name], capture_output=True, text=True).stdout
    registers = re.search(r"REG:(\d+)", report)
    stack = re.search(r"STACK:(\d+)", report)
    return (registers.group(1) if registers else "?", stack.group(1) if stack else "?")


def variants(quick: bool = False):
    tables = {name: domain.segment_table() for name, (domain, _) in layouts(1.0).items()}
    tables["mixed (every kind)"] = ob.Product([
        ob.HalfLine(low=0.0), ob.Interval(0.0, 1.0), ob.HalfLine(high=2.0), ob.Lattice(0, 255), ob.Binary(),
        *[ob.Categorical(k) for k in (2, 9, 16, 42, 200, 1000, 4096)], ob.Sphere(3), ob.Real(),
    ]).segment_table()
    for name, table in tables.items():
        if quick and name not in ("adult-like 30k", "mixed (every kind)"):
            continue
        plan = build_plan(table, "cpu")
        settings = bridge.launch_settings(torch.device("cuda"), plan)  # what a launch on a GPU would use
        common = {"KINDS": plan.kinds, "CLASSES": plan.classes, "ROWS_PER_PROGRAM": settings["ROWS_PER_PROGRAM"], "TILE": settings["TILE"]}
        bridge_only = {"WIDE_OFFSETS": False}
        for mode, mode_name in ((bridge.STEP.value, "step"), (bridge.TARGET.value, "target"), (bridge.MEAN.value, "mean")):
            yield name, f"{mode_name} f32", bridge.bridge_kernel, _bridge_signature("fp32", "fp32"), {"MODE": mode, "HAS_DRIFT": mode == 1, "HAS_PREVIOUS": False, **common, **bridge_only}
        yield name, "step bf16 drift", bridge.bridge_kernel, _bridge_signature("fp32", "bf16"), {"MODE": 1, "HAS_DRIFT": True, "HAS_PREVIOUS": False, **common, **bridge_only}
        yield name, "bridge step f32", bridge.bridge_kernel, _bridge_signature("fp32", "fp32"), {"MODE": bridge.BRIDGE_STEP.value, "HAS_DRIFT": True, "HAS_PREVIOUS": True, **common, **bridge_only}
        yield name, "target bf16 x", bridge.bridge_kernel, _bridge_signature("bf16", "fp32"), {"MODE": 2, "HAS_DRIFT": False, "HAS_PREVIOUS": False, **common, **bridge_only}
        yield name, "final", final_step.final_step_kernel, _final_signature("fp32"), {"HAS_DRIFT": True, **common}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100/H200) or 80 (A100)")
    parser.add_argument("--quick", action="store_true", help="only the Adult-like and the every-kind layouts")
    arguments = parser.parse_args()
    target = GPUTarget("cuda", arguments.arch, 32)
    print(f"triton {triton.__version__}, target sm_{arguments.arch}, launch settings {bridge.GPU_SETTINGS}, "
          f"tile {bridge.MIXED_LAYOUT_TILE} for layouts mixing kinds")
    print("| layout | kernel | registers | stack (bytes) | shared (bytes) | compile s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for layout, what, kernel, signature, constexprs in variants(arguments.quick):
        report = compile_variant(kernel, signature, constexprs, target)
        print(f"| {layout} | {what} | {report['registers']} | {report['stack']} | {report['shared']} | {report['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
