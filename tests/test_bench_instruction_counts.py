"""bench/sass.py counts a loop's usual path as its docstring says, and bench/instruction_counts.py runs
offline (Triton's compiler and nvcc for sm_90, no GPU) and its two quick layouts meet the
instruction targets of the GPU diet (bench/results/instructions-sm90.md)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import sass  # noqa: E402

LISTING = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   FADD R2, R2, 1 ;
        /*0020*/              @!P1 BRA `(.L_x_1) ;
        /*0030*/                   MOV R4, R2 ;
        /*0040*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_sqrt_rn_f32_slowpath) ;
        /*0050*/                   BRA `(.L_x_2) ;
.L_x_1:
        /*0060*/                   MUFU.RSQ R3, R2 ;
.L_x_2:
	//## File "/src/kernel.cu", line 7
        /*0070*/              @P2 BRA `(.L_x_3) ;
        /*0080*/                   LDG.E R5, [R6] ;
        /*0090*/                   LDG.E R7, [R8] ;
.L_x_3:
	//## File "/src/kernel.cu", line 9
.L_x_4:
        /*00a0*/                   FMUL R9, R9, R9 ;
        /*00b0*/              @P3 BRA `(.L_x_4) ;
        /*00c0*/                   NOP ;
        /*00d0*/                   ISETP.GE.AND P0, PT, R2, R3, PT ;
        /*00e0*/              @!P0 BRA `(.L_x_0) ;
        /*00f0*/                   EXIT ;
.L_x_5:
        /*0100*/                   BRA `(.L_x_5);
"""


def test_the_usual_path_leaves_out_slow_paths_rare_lines_and_nested_loops():
    program = sass.parse(LISTING)
    outer, inner = sass.loops(program)
    assert (outer.head, outer.back) == (1, 14) and (inner.head, inner.back) == (10, 11)
    # Body: 14 instructions from FADD to the back branch. Left out: the slow path's MOV, CALL, BRA
    # (3), the nested loop's FMUL and BRA (2, reported as a nested body of 2), the NOP (1).
    everything = sass.count_loop(program, outer)
    assert everything.instructions == 14 - 3 - 2 - 1 and everything.nested == [2]
    # Naming line 7 rare leaves out the two loads its branch skips (the branch itself still counts).
    rare = sass.count_loop(program, outer, rare_lines=frozenset({("/src/kernel.cu", 7)}))
    assert rare.instructions == everything.instructions - 2
    assert rare.by_source[("/src/kernel.cu", 7)] == 1 and rare.by_source[("/src/kernel.cu", 9)] == 2


# nvdisasm -gi: a helper (line 3) inlined into a rare line (7) and into an ordinary one (9).
INLINED_LISTING = """
.L_x_0:
	//## File "/src/kernel.cu", line 5
        /*0000*/              @P2 BRA `(.L_x_1) ;
	//## File "/src/kernel.cu", line 7
        /*0010*/                   MOV R4, RZ ;
	//## File "/src/kernel.cu", line 3 inlined at "/src/kernel.cu", line 7
	//## File "/src/kernel.cu", line 7 inlined at "/src/kernel.cu", line 20
	//## File "/src/kernel.cu", line 20
        /*0020*/                   LDG.E R5, [R6] ;
        /*0030*/                   LDG.E R7, [R8] ;
.L_x_1:
	//## File "/src/kernel.cu", line 3 inlined at "/src/kernel.cu", line 9
	//## File "/src/kernel.cu", line 9
        /*0040*/                   LDG.E R9, [R10] ;
	//## File "/src/kernel.cu", line 5
        /*0050*/              @!P0 BRA `(.L_x_0) ;
"""


def test_a_helper_inlined_into_a_rare_line_is_rare():
    program = sass.parse(INLINED_LISTING)
    assert program.instructions[1].frames == (("/src/kernel.cu", 7),)
    assert program.instructions[2].source == ("/src/kernel.cu", 3)
    assert program.instructions[2].frames == (("/src/kernel.cu", 3), ("/src/kernel.cu", 7), ("/src/kernel.cu", 20))
    assert program.instructions[4].frames == (("/src/kernel.cu", 3), ("/src/kernel.cu", 9))
    (loop,) = sass.loops(program)
    assert sass.count_loop(program, loop).instructions == 6
    # Line 7 rare: the branch skips its MOV and both loads inlined there; the load inlined at line 9 counts.
    rare = sass.count_loop(program, loop, rare_lines=frozenset({("/src/kernel.cu", 7)}))
    assert rare.instructions == 3 and rare.by_source[("/src/kernel.cu", 3)] == 1
    # A rare line further out in the chain (line 20, which line 7 is inlined into) counts as well.
    assert sass.count_loop(program, loop, rare_lines=frozenset({("/src/kernel.cu", 20)})).instructions == 3


# A kernel whose loop calls a helper of the same listing twice; the helper has a loop of its own, a
# double division's slow path (its call to the full routine) and ends in RET; the listing ends in the
# BRA-to-itself padding.
CALLING_LISTING = """
        .type           kernel,@function
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   LDG.E R2, [R4] ;
        /*0020*/                   CALL.REL.NOINC `($kernel$helper) ;
        /*0030*/                   CALL.REL.NOINC `($kernel$helper) ;
        /*0040*/              @!P0 BRA `(.L_x_0) ;
        /*0050*/                   EXIT ;
        .type           $kernel$helper,@function
        /*0060*/                   FMUL R3, R2, R2 ;
.L_x_1:
        /*0070*/                   FADD R3, R3, 1 ;
        /*0080*/              @P1 BRA `(.L_x_1) ;
        /*0090*/              @P2 BRA `(.L_x_2) ;
        /*00a0*/                   MOV R6, 0x1f80 ;
        /*00b0*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_rn_f64_full) ;
.L_x_2:
        /*00c0*/                   RET.REL.NODEC R20 `(kernel) ;
        .type           $__internal_0_$__cuda_sm20_div_rn_f64_full,@function
        /*00d0*/                   DFMA R8, R8, R10, R12 ;
        /*00e0*/                   RET.REL.NODEC R6 `(kernel) ;
.L_x_3:
        /*00f0*/                   BRA `(.L_x_3);
"""


def test_a_call_counts_the_callees_usual_path_once_per_call():
    program = sass.parse(CALLING_LISTING)
    assert program.functions == {"kernel": (0, 6), "$kernel$helper": (6, 13), "$__internal_0_$__cuda_sm20_div_rn_f64_full": (13, 16)}
    outer = next(loop for loop in sass.loops(program) if loop.head == 1)
    # The helper: FMUL, the branch around the slow path, RET (3); its loop (FADD, BRA) and the slow
    # path's MOV and CALL are left out. The padding BRA is no loop and never counted.
    assert sass.count_function(program, "$kernel$helper").instructions == 3
    assert len(sass.loops(program)) == 2
    # The trip: LDG, two CALLs, the back branch (4), plus the helper twice; the helper's loop reported twice.
    count = sass.count_loop(program, outer)
    assert count.instructions == 4 + 2 * 3 and count.nested == [2, 2]
    # A call into another listing cannot be counted: it fails rather than count one instruction.
    with pytest.raises(KeyError):
        sass.count_loop(sass.parse(CALLING_LISTING.replace("$kernel$helper) ;\n        /*0040", "$elsewhere) ;\n        /*0040")),
                        outer)


def _offline_tools_missing() -> str:
    try:
        import triton  # noqa: F401
    except ImportError as error:
        return f"triton is not installed ({error})"
    if shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists() and not os.environ.get("CUDA_HOME"):
        return "nvcc is not installed"
    return ""


@pytest.mark.skipif(bool(_offline_tools_missing()), reason=_offline_tools_missing() or "tools present")
def test_the_counts_run_offline_and_the_quick_layouts_meet_the_targets():
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    environment["TRITON_DEFAULT_FP_FUSION"] = "1"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "instruction_counts.py"), "--quick"], cwd=ROOT,
                            env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"[\d.]+", cells[3]):
            rows[(cells[0], cells[1], cells[2])] = (float(cells[3]), int(cells[5]), int(cells[6]))
    layouts = ("unconstrained 16M (noise + update only)", "half-line 16M")
    expected = {(layout, backend, mode) for layout in layouts for backend in ("triton", "cuda") for mode in ("step", "target")}
    assert set(rows) == expected, result.stdout
    targets = {"unconstrained 16M (noise + update only)": 60.0, "half-line 16M": 100.0}  # the diet's, for the step
    for (layout, backend, mode), (per_element, registers, spilled) in rows.items():
        assert 0 < registers <= 255 and spilled == 0, f"{layout} {backend} {mode}: {registers} registers, {spilled} bytes spilled"
        assert per_element > 10, f"{layout} {backend} {mode}: {per_element} instructions per element is not a count"
        if mode == "step":
            assert per_element <= targets[layout], f"{layout} {backend} step: {per_element} instructions per element"
