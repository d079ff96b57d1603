"""Instructions per element of the fused step and training target, compiled for sm_90 without a GPU.

For every layout of bench/run_gpu.py, compiles the kernels of the Triton backend (with Triton's
compiler and ptxas) and of the CUDA C++ backend (csrc/cuda/kernels.cu, with nvcc) for the GPU
target, disassembles them (nvdisasm) and reports, for the step and the training target:

* **instructions per element**: the SASS instructions of the usual path through one trip of
  the kernel's loop (bench/sass.py: slow paths of IEEE division and square root, and loops
  nested in the body, left out), times the threads that run the trip, divided by the
  elements the trip handles; summed over the layout's work items and divided by its width.
  This is what a thread issues per element: at the H200's issue rate (132 SMs x 4 schedulers
  x 32 lanes x 1.98 GHz = 33.4 T thread-instructions/s) a kernel of N instructions per element
  cannot pass 33.4/N T elements/s, whatever the memory does;
* registers per thread and spilled bytes (local memory) of the variant a launch uses.

How each backend is counted:

* Triton: one program runs one work item (kernels/plan.py) for ROWS_PER_PROGRAM rows, in
  trips of SUB_ROWS rows x BLOCK columns over ``num_warps`` x 32 threads. Each (kind, tile
  class) of the layout is compiled alone (KINDS and CLASSES of that item only, the launch's
  TILE) so that the loop holds that item's path; registers and spills are those of the
  variant that a launch on the whole layout compiles.
* CUDA C++: one thread runs one work item of one row per trip of its grid-stride loop: four
  columns of a block item, or a whole categorical group. The kernels are specialised per kind
  set at compile time (the ``kKinds`` template argument); the count uses the variant of the
  layout's kinds, as a launch does. A call the trip makes to a ``__noinline__`` helper (the
  lattice's ``lattice_mean``) counts with the helper's usual path (bench/sass.py), once per
  call: four per block item. Counted: layouts of one element-wise kind (the lattice included),
  whose trip is one block item. Not counted: the kernel of categorical groups (a trip runs a
  whole group, its columns in loops whose trips depend on the group's width, and nvcc unrolls
  them with remainder loops: a count per element needs each SASS loop's trip count, which is
  not read from the listing) and the general kernel of mixed layouts such as Adult-like (a
  block item's path depends on its columns' kinds at run time).

Nested loops left out of a count (a lattice's window; their trips depend on the data) are
listed in the results under the table, with their body sizes.

    python bench/instruction_counts.py                 # writes bench/results/instructions-sm90.md
    python bench/instruction_counts.py --quick         # two layouts, printed only
    python bench/instruction_counts.py --arch 80       # A100

Needs nvcc (CUDA 12 or later) and Triton's bundled ptxas, nvdisasm and cuobjdump; no GPU.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import functools
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter as Tally
from pathlib import Path

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    raise SystemExit("unset TRITON_INTERPRET: this script compiles for the GPU")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

import sass  # noqa: E402
from omegabridge.kernels import bridge  # noqa: E402
from omegabridge.kernels.plan import FIRST_SMALL_GROUP_CLASS_INDEX, TILE_WIDTHS, WIDE_GROUP_CLASS, build_plan, small_group_rows  # noqa: E402
from run_gpu import gpu_layouts  # noqa: E402
from triton_resources import _bridge_signature, compile_variant  # noqa: E402

TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
RESULTS = HERE / "results" / "instructions-sm90.md"
ISSUE_RATE = 132 * 4 * 32 * 1.98e9  # H200: thread-instructions per second at one warp-instruction per scheduler per clock
MODES = {"step": bridge.STEP.value, "target": bridge.TARGET.value}
CUDA_SOURCE = ROOT / "csrc" / "cuda" / "kernels.cu"


# ---------------------------------------------------------------------------------------
# Attribution of instructions to the functions they come from
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _functions_of(path: str) -> list[tuple[int, int, str]]:
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError):
        return []
    return [(node.lineno, node.end_lineno, node.name) for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]


def function_of(source: tuple[str, int] | None) -> str:
    """``module.function`` of a (file, line) pair from the SASS line markers (innermost function)."""
    if source is None:
        return "(no line)"
    path, line = source
    best = None
    for first, last, name in _functions_of(path):
        if first <= line <= last and (best is None or first > best[0]):
            best = (first, name)
    stem = Path(path).stem
    return f"{stem}.{best[1]}" if best else f"{stem}:{line}"


def by_function(tally: Tally) -> Tally:
    result = Tally()
    for source, count in tally.items():
        result[function_of(source)] += count
    return result


def disassemble(cubin: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        return subprocess.run([str(TOOLS / "nvdisasm"), "-c", "-gi", handle.name], capture_output=True, text=True,
                              check=True).stdout


# ---------------------------------------------------------------------------------------
# Triton
# ---------------------------------------------------------------------------------------
ROW_STRIDES = ("input_stride", "drift_stride", "out_stride", "target_stride", "previous_stride")


def launch_attributes(signature: dict, width: int) -> dict:
    """The divisibility a launch on contiguous rows of ``width`` columns specialises on (as Triton's
    JIT does: pointers and int arguments divisible by 16, except those in do_not_specialize):
    torch's allocations are 16-byte aligned; row strides equal the width; the parameter table has
    width + 4 columns (kernels/plan.py)."""
    names = list(signature)
    attributes = {}
    for index, name in enumerate(names):
        divisible = (signature[name].startswith("*") or (name in ROW_STRIDES and width % 16 == 0)
                     or (name == "parameters_stride" and (width + 4) % 16 == 0))
        if divisible:
            attributes[(index,)] = [["tt.divisibility", 16]]
    return attributes


@functools.lru_cache(maxsize=None)
def _triton_compile(mode: int, kinds: int, classes: int, tile: int, rows_per_program: int, arch: int, width: int):
    constexprs = {"MODE": mode, "HAS_DRIFT": mode == bridge.STEP.value, "HAS_PREVIOUS": False, "KINDS": kinds,
                  "CLASSES": classes, "ROWS_PER_PROGRAM": rows_per_program, "TILE": tile, "WIDE_OFFSETS": False}
    signature = _bridge_signature("fp32", "fp32")
    report = compile_variant(bridge.bridge_kernel, signature, constexprs, GPUTarget("cuda", arch, 32),
                             attrs=launch_attributes(signature, width))
    return report["cubin"], int(report["registers"]), int(report["stack"])


def _sub_rows(block: int, tile: int, rows_per_program: int) -> int:
    """Rows per trip of kernels/bridge.py's row loop (SUB_ROWS there)."""
    return 1 if tile < block else min(tile // block, rows_per_program)


def triton_counts(table, mode_name: str, arch: int) -> dict:
    """Instructions per element of one mode on one layout for the Triton backend."""
    plan = build_plan(table, "cpu")
    settings = bridge.launch_settings(torch.device("cuda"), plan)
    tile, rows_per_program = settings["TILE"], settings["ROWS_PER_PROGRAM"]
    threads = bridge.GPU_SETTINGS["num_warps"] * 32
    mode = MODES[mode_name]
    _, registers, stack = _triton_compile(mode, plan.kinds, plan.classes, tile, rows_per_program, arch, table.width)
    per_row = 0.0
    functions = Tally()
    nested = set()
    items = []
    for kind, start, end, item_class in plan.items.tolist():
        if item_class == WIDE_GROUP_CLASS:
            raise NotImplementedError("groups wider than the widest tile are not counted")
        cubin, _, _ = _triton_compile(mode, 1 << kind, 1 << item_class, tile, rows_per_program, arch, table.width)
        program = _program(cubin)
        all_loops = sass.loops(program)
        body = sass.count_loop(program, all_loops[0], all_loops)  # the row loop: the outermost
        if item_class >= FIRST_SMALL_GROUP_CLASS_INDEX:  # a row per lane (kernels/bridge.py, _small_group_item)
            trip_rows = small_group_rows(tile, rows_per_program)
        else:
            trip_rows = _sub_rows(TILE_WIDTHS.value[item_class], tile, rows_per_program)
        per_row += body.instructions * threads / trip_rows
        items.append({"kind": kind, "columns": (start, end), "class": item_class,
                      "per_row": body.instructions * threads / trip_rows})
        for name, count in by_function(body.by_source).items():
            functions[name] += count * threads / trip_rows
        nested.update(body.nested)
    width = table.width
    return {"per_element": per_row / width, "registers": registers, "stack": stack,
            "functions": {name: count / width for name, count in functions.items()}, "nested": sorted(nested), "items": items}


@functools.lru_cache(maxsize=None)
def _program_of_text(listing: str, function: str | None = None) -> sass.Program:
    if function is not None:
        listing = sass.split_functions(listing)[function]
    return sass.parse(listing)


def _program(cubin: bytes) -> sass.Program:
    return _program_of_text(disassemble(cubin))


# ---------------------------------------------------------------------------------------
# CUDA C++
# ---------------------------------------------------------------------------------------
def _nvcc() -> str:
    home = os.environ.get("CUDA_HOME")
    if home and (Path(home) / "bin" / "nvcc").is_file():
        return str(Path(home) / "bin" / "nvcc")
    for candidate in ("nvcc", "/usr/local/cuda/bin/nvcc"):
        found = subprocess.run(["bash", "-c", f"command -v {candidate}"], capture_output=True, text=True).stdout.strip()
        if found:
            return found
    raise SystemExit("nvcc not found (set CUDA_HOME or put nvcc on PATH)")


@functools.lru_cache(maxsize=None)
def _cuda_listing(arch: int) -> tuple[str, str]:
    """(nvdisasm listing with line numbers, cuobjdump resource report) of kernels.cu compiled for sm_<arch>."""
    with tempfile.TemporaryDirectory() as folder:
        cubin = Path(folder) / "kernels.cubin"
        subprocess.run([_nvcc(), "-cubin", f"-arch=sm_{arch}", "-std=c++17", "-O3", "-lineinfo", f"-I{ROOT / 'csrc' / 'include'}",
                        f"-I{ROOT / 'csrc' / 'cuda'}", str(CUDA_SOURCE), "-o", str(cubin)], check=True, capture_output=True, text=True)
        listing = disassemble(cubin.read_bytes())
        resources = subprocess.run([str(TOOLS / "cuobjdump"), "--dump-resource-usage", str(cubin)], capture_output=True,
                                   text=True, check=True).stdout
    return listing, resources


# What csrc/cuda/kernels.cu's launch_float32 specialises: layouts of one of these kinds (posterior.h's Kind:
# real, interval, half-lines, lattice, binary, categorical).
CUDA_SPECIALISED_KINDS = (0, 1, 2, 3, 4, 5, 6)
CUDA_GROUP_KINDS = (6, 7)
CUDA_ALL_KINDS = 0xFF


def cuda_kernel_kinds(table) -> int:
    """The kKinds argument of the kernel a float32 launch on ``table`` runs."""
    kinds = 0
    for segment in table.elements:
        kinds |= 1 << int(segment.kind)
    return kinds if any(kinds == 1 << kind for kind in CUDA_SPECIALISED_KINDS) else CUDA_ALL_KINDS


def _cuda_kernel_name(functions, op: str, kinds: int) -> str:
    """The mangled name of bridge_kernel<Op::op, 0, kinds> among the listing's functions."""
    op_index = {"kMean": 0, "kStep": 1, "kBridgeStep": 2, "kTarget": 3}[op]
    names = [name for name in functions if "bridge_kernel" in name and f"OpE{op_index}ELi0ELj{kinds}EE" in name]
    if len(names) != 1:
        raise RuntimeError(f"expected one bridge_kernel<{op}, 0, {kinds}> in the listing, found {names}")
    return names[0]


def _cuda_resources(resources: str, name: str) -> tuple[int, int]:
    block = resources.split(f"Function {name}:", 1)[1].split("Function ", 1)[0]
    registers = re.search(r"REG:(\d+)", block)
    stack = re.search(r"STACK:(\d+)", block)
    return int(registers.group(1)), int(stack.group(1))


def cuda_counts(table, mode_name: str, arch: int) -> dict:
    """Instructions per element of one mode on one layout for the CUDA C++ backend (float32 inputs).

    Counted where the launch runs a kernel specialised for the layout's one element-wise kind: a
    thread's trip through the grid-stride loop handles one block item (four columns of a row) and
    nothing else is compiled in. The kernel of categorical groups runs a group per trip, its
    columns in loops whose trip counts the SASS does not give; the general kernel (layouts
    mixing kinds) decides each column's kind at run time, so its loop holds every kind's code
    and no single count is its path.
    """
    kinds = cuda_kernel_kinds(table)
    if kinds == CUDA_ALL_KINDS:
        raise NotImplementedError("the general kernel: each column's path depends on its kind at run time")
    if any(kinds == 1 << kind for kind in CUDA_GROUP_KINDS):
        raise NotImplementedError("the kernel of categorical groups: a trip runs a whole group, its columns in loops "
                                  "(unrolled by nvcc, with remainder loops) whose trip counts the SASS does not give")
    if table.width % 4 != 0:
        raise NotImplementedError("rows of a width that is not a multiple of 4")
    listing, resources = _cuda_listing(arch)
    functions = sass.split_functions(listing)
    name = _cuda_kernel_name(functions, {"step": "kStep", "target": "kTarget"}[mode_name], kinds)
    registers, stack = _cuda_resources(resources, name)
    program = _program_of_text(listing, name)
    all_loops = sass.loops(program)
    outer = sass.count_loop(program, all_loops[0], all_loops, cuda_rare_lines())  # the grid-stride loop
    return {"per_element": outer.instructions / 4, "registers": registers, "stack": stack,
            "functions": {name: count / 4 for name, count in _cuda_functions(outer.by_source).items()},
            "nested": sorted(set(outer.nested))}


def cuda_rare_lines() -> frozenset:
    """(file, line) of the lines of kernels.cu marked ``// rare path``."""
    lines = CUDA_SOURCE.read_text().splitlines()
    return frozenset((str(CUDA_SOURCE), number) for number, line in enumerate(lines, start=1) if "// rare path" in line)


def _cuda_functions(tally: Tally) -> Tally:
    """Instructions per source file and line range, named by the C++ function that holds the line."""
    result = Tally()
    for source, count in tally.items():
        result[_cpp_function_of(source)] += count
    return result


@functools.lru_cache(maxsize=None)
def _cpp_function_starts(path: str) -> list[tuple[int, str]]:
    """(line, name) of each function definition in a C++ source, by a pattern (good enough for ours)."""
    starts = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return starts
    pattern = re.compile(r"^(?:template <[^>]*>\s*)?(?:__\w+__(?:\([^)]*\))?\s+|OB_INLINE\s+|static\s+|inline\s+|constexpr\s+|void\s+)*"
                         r"[\w:<>,\s\*&]*?\b(\w+)\s*\([^;]*$")
    for number, line in enumerate(lines, start=1):
        if line.startswith((" ", "\t", "#", "//", "}")):
            continue
        match = pattern.match(line)
        if match and match.group(1) not in ("if", "for", "while", "switch", "return"):
            starts.append((number, match.group(1)))
    return starts


def _cpp_function_of(source: tuple[str, int] | None) -> str:
    if source is None:
        return "(no line)"
    path, line = source
    best = None
    for number, name in _cpp_function_starts(path):
        if number <= line:
            best = name
    return f"{Path(path).name}:{best or line}"


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
def rows(arch: int, quick: bool):
    for layout, (domain, _) in gpu_layouts().items():
        if layout == "half-line 2^28":
            continue  # the same kernel as half-line 16M
        if quick and layout not in ("unconstrained 16M (noise + update only)", "half-line 16M"):
            continue
        table = domain.segment_table()
        for backend, counter in (("triton", triton_counts), ("cuda", cuda_counts)):
            for mode in MODES:
                try:
                    yield layout, backend, mode, counter(table, mode, arch)
                except NotImplementedError as why:
                    yield layout, backend, mode, {"skipped": str(why)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100/H200) or 80 (A100)")
    parser.add_argument("--quick", action="store_true", help="two layouts, printed, not written")
    parser.add_argument("--output", type=Path, default=None, help=f"markdown report (default {RESULTS.relative_to(ROOT)} for a full sm_90 run)")
    arguments = parser.parse_args()
    lines = ["| layout | backend | kernel | instructions per element | cap at the H200 issue rate (G el/s) | registers | spill (bytes) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)
    details = []
    left_out = []
    counted = {}
    for layout, backend, mode, count in rows(arguments.arch, arguments.quick):
        if "skipped" not in count:
            counted[(layout, backend, mode)] = count["per_element"]
        if "skipped" in count:
            line = f"| {layout} | {backend} | {mode} | not counted: {count['skipped']} | | | |"
        else:
            per_element = count["per_element"]
            line = (f"| {layout} | {backend} | {mode} | {per_element:.1f} | {ISSUE_RATE / per_element / 1e9:.0f} | "
                    f"{count['registers']} | {count['stack']} |")
            if count["functions"]:
                top = sorted(count["functions"].items(), key=lambda item: -item[1])
                details.append(f"| {layout} | {backend} | {mode} | " + ", ".join(f"{name} {value:.1f}" for name, value in top if value >= 0.5) + " |")
            if count["nested"]:
                left_out.append(f"- {layout}, {backend}, {mode}: loops of " + ", ".join(map(str, count["nested"])) + " instructions.")
        lines.append(line)
        print(line, flush=True)
    output = arguments.output or (RESULTS if not arguments.quick and arguments.arch == 90 else None)
    if output is None:
        return
    header = [
        "# Fused kernels on sm_90: instructions per element (bench/instruction_counts.py)",
        "",
        f"Compiled for sm_{arguments.arch} on a machine without a GPU, {datetime.date.today().isoformat()}: Triton "
        f"{triton.__version__} and its ptxas, nvcc {_nvcc_version()}. Command: `python bench/instruction_counts.py`. "
        "How the counts are made: the docstring of bench/instruction_counts.py and bench/sass.py.",
        "",
    ]
    footer = ["", "## Loops left out of the counts, and branches on the data", "",
              "Loops nested in a counted trip (their trips depend on the data: a lattice's window), by body size; "
              "not in the instructions per element above. Where a trip branches on the data, both sides are counted "
              "(bench/sass.py), so the count is an upper bound of any one element's path: for a lattice, the CUDA "
              "kernel's lattice_mean holds the Euler-Maclaurin sum in its fast and its careful form and the window's "
              "setup, and all three count, four calls per block item.", "", *(left_out or ["- none."]),
              "", "## Against the targets of the instruction diet", "", *target_lines(counted),
              "", "## Where the instructions come from", "",
              "Per element, by the source function each instruction's line lies in (Triton: kernels/*.py; CUDA: "
              "csrc/**; functions under half an instruction left out).", "",
              "| layout | backend | kernel | functions |", "| --- | --- | --- | --- |", *details]
    output.write_text("\n".join(header + lines + footer) + "\n")
    print(f"wrote {output}")


# The diet's targets (steps, instructions per element) and the target's allowance over the step.
STEP_TARGETS = {"unconstrained 16M (noise + update only)": 60.0, "half-line 16M": 100.0, "adult-like 1M": 130.0}
TARGET_OVER_STEP = 1.10


def target_lines(counted: dict) -> list[str]:
    """One line per (layout, backend): the step against its target, the training target against the step."""
    lines = []
    for layout, limit in STEP_TARGETS.items():
        for backend in ("triton", "cuda"):
            step, target = counted.get((layout, backend, "step")), counted.get((layout, backend, "target"))
            if step is None:
                lines.append(f"- {layout}, {backend}: not counted (target: step <= {limit:.0f}).")
                continue
            verdict = "met" if step <= limit else "NOT met"
            line = f"- {layout}, {backend}: step {step:.1f} against <= {limit:.0f}, {verdict}"
            if target is not None:
                ratio = target / step
                line += (f"; training target {target:.1f} = {ratio:.2f}x the step against <= {TARGET_OVER_STEP:.2f}x, "
                         f"{'met' if ratio <= TARGET_OVER_STEP else 'NOT met'}")
            lines.append(line + ".")
    return lines


def _nvcc_version() -> str:
    text = subprocess.run([_nvcc(), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"release ([\d.]+)", text)
    return match.group(1) if match else "?"


if __name__ == "__main__":
    main()
