"""Read SASS (the GPU's machine code, from nvdisasm) and count the instructions of a loop's usual path.

Used by bench/instruction_counts.py. A kernel's cost per element is the instructions its
threads issue per element handled; for these element-wise kernels that is the body of the
loop over rows (or over a thread's work items) divided by the elements one trip handles. The
body is counted as it runs in the common case:

* the slow paths of IEEE division and square root (a predicated branch around a call to a
  ``__internal_..._slowpath`` routine, or to ``__internal_..._div_rn_f64_full`` for a double
  division, taken only for subnormal, huge or special inputs) are left out, their test and
  branch counted;
* a call to a function of the same listing (a ``__noinline__`` helper such as the CUDA
  kernels' ``lattice_mean``) that the usual path makes counts the call and the callee's own
  usual path, counted by the same rules, once per call site;
* a forward branch over code that comes mostly from *rare lines* (source lines the caller
  names: in csrc/cuda/kernels.cu, those marked ``// rare path``, such as the scalar fallback
  for rows that are not 16-byte aligned) is taken as skipped, its test and branch counted. An
  instruction comes from a rare line when that line is anywhere in its chain of inlined calls
  (listings from ``nvdisasm -gi``): a helper inlined into a rare line runs only as rarely;
* loops nested in the body (a lattice window, a quadrature) are left out and reported
  separately with their own body sizes, since their trip counts depend on the data.

Every other instruction of the body counts, both sides of an if/else included: for code
whose branches depend on the data (a lattice's window against its Euler-Maclaurin sum, an
interval's quadrature) the count is an upper bound of the path.

Example:
    >>> listing = '''
    ...         /*0000*/                   MOV R1, c[0x0][0x28] ;
    ... .L_x_0:
    ...         /*0010*/                   FADD R2, R2, 1 ;
    ...         /*0020*/                   ISETP.GE.AND P0, PT, R2, R3, PT ;
    ...         /*0030*/              @!P0 BRA `(.L_x_0) ;
    ...         /*0040*/                   EXIT ;
    ... '''
    >>> program = parse(listing)
    >>> [count_loop(program, loop).instructions for loop in loops(program)]
    [3]
"""

from __future__ import annotations

import re
from collections import Counter as Tally
from dataclasses import dataclass, field

_INSTRUCTION = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_LABEL = re.compile(r"^(\.L_\w+):")
_SOURCE = re.compile(r'//## File "([^"]+)", line (\d+)')
_TARGET = re.compile(r"`\((\.L_\w+)\)")
_CALLEE = re.compile(r"`\((\$[^)\s]+)\)")
_FUNCTION = re.compile(r"^\s*\.type\s+(\S+),\s*@function")
# Routines of the CUDA math library that run only for inputs outside the fast path's range.
_SLOW_PATH_ROUTINE = re.compile(r"^\$__internal_\S*(?:slowpath|div_rn_f64_full)$")
SLOW_PATH_LENGTH = 8


@dataclass
class Instruction:
    address: int
    text: str
    source: tuple[str, int] | None  # (file, line) of the most recent line marker
    # The whole chain of inlined calls, innermost first (``nvdisasm -gi``); (source,) otherwise.
    frames: tuple[tuple[str, int], ...] = ()

    @property
    def opcode(self) -> str:
        words = self.text.split()
        word = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
        return word

    @property
    def target(self) -> str | None:
        match = _TARGET.search(self.text)
        return match.group(1) if match and self.opcode.startswith(("BRA", "BRX", "JMP")) else None

    @property
    def conditional(self) -> bool:
        return self.text.startswith("@")

    @property
    def callee(self) -> str | None:
        """The function a CALL names (``$name`` as in the listing's ``.type`` lines), else None."""
        match = _CALLEE.search(self.text)
        return match.group(1) if match and self.opcode.startswith("CALL") else None


@dataclass
class Program:
    instructions: list[Instruction]
    labels: dict[str, int]  # label -> index of the instruction it names
    # name -> (first, end) indices of each function of the listing (``.type name,@function``):
    # a kernel's listing holds the kernel and, after it, the subroutines it calls.
    functions: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Loop:
    head: int  # index of the first instruction of the body
    back: int  # index of the backward branch


@dataclass
class LoopCount:
    instructions: int                                   # the usual path through one trip of the body
    by_source: Tally = field(default_factory=Tally)     # the same, per (file, line)
    nested: list[int] = field(default_factory=list)     # body sizes of nested loops, left out above
    registers: int | None = None


def parse(listing: str) -> Program:
    """The instructions and labels of one function's nvdisasm listing (``nvdisasm -c -g`` or ``-gi``:
    there a line marker is followed by one marker per caller it is inlined into)."""
    instructions: list[Instruction] = []
    labels: dict[str, int] = {}
    starts: list[tuple[str, int]] = []
    frames: tuple[tuple[str, int], ...] = ()
    chain_open = False  # the previous line was a marker: a marker now names a caller
    for line in listing.splitlines():
        function = _FUNCTION.match(line)
        if function:
            starts.append((function.group(1), len(instructions)))
            continue
        marker = _SOURCE.search(line)
        if marker:
            frame = (marker.group(1), int(marker.group(2)))
            frames = frames + (frame,) if chain_open else (frame,)
            chain_open = True
            continue
        chain_open = False
        label = _LABEL.match(line.strip())
        if label:
            labels[label.group(1)] = len(instructions)
            continue
        match = _INSTRUCTION.match(line)
        if match:
            instructions.append(Instruction(int(match.group(1), 16), match.group(2), frames[0] if frames else None, frames))
    ends = [start for _, start in starts[1:]] + [len(instructions)]
    return Program(instructions, labels, {name: (start, end) for (name, start), end in zip(starts, ends)})


def split_functions(listing: str) -> dict[str, str]:
    """nvdisasm's listing of a cubin cut per function: name -> its part of the listing."""
    parts: dict[str, list[str]] = {}
    current = None
    for line in listing.splitlines():
        header = re.match(r"\s*\.text\.(\S+?):?\s*$", line) or re.match(r"\s*\.section\s+\.text\.([^,\s]+)", line)
        if header:
            current = header.group(1)
            parts.setdefault(current, [])
            continue
        if current is not None:
            parts[current].append(line)
    return {name: "\n".join(lines) for name, lines in parts.items()}


def _padding(program: Program, index: int) -> bool:
    """Whether an instruction is the ``BRA`` to itself that pads the end of a listing (never reached)."""
    instruction = program.instructions[index]
    return instruction.text.startswith("BRA") and program.labels.get(instruction.target or "") == index


def loops(program: Program) -> list[Loop]:
    """Every loop, from its backward branches, outermost first (larger range first)."""
    found = set()
    for index, instruction in enumerate(program.instructions):
        target = instruction.target
        if target is not None and target in program.labels and program.labels[target] <= index:
            if _padding(program, index):
                continue
            found.add(Loop(program.labels[target], index))
    return sorted(found, key=lambda loop: (loop.head - loop.back, loop.head))


def _rare(region: list[Instruction], rare_lines: frozenset) -> bool:
    """Whether most of a region's instructions from the caller's own sources come from rare lines
    (a rare line anywhere in an instruction's chain of inlined calls)."""
    paths = {path for path, _ in rare_lines}
    own = [item for item in region if any(path in paths for path, _ in item.frames)]
    return bool(own) and 2 * sum(any(frame in rare_lines for frame in item.frames) for item in own) >= len(own)


def _slow_paths(program: Program, first: int, last: int, rare_lines: frozenset = frozenset()) -> list[tuple[int, int]]:
    """(begin, end) index ranges inside [first, last] skipped in the usual case: a forward
    conditional branch over a region that calls an internal slow-path routine, or over a region
    of rare lines."""
    ranges = []
    for index in range(first, last + 1):
        instruction = program.instructions[index]
        target = instruction.target
        if not instruction.conditional or target is None or target not in program.labels:
            continue
        end = program.labels[target]
        if end <= index:
            continue
        region = program.instructions[index + 1:end]
        # Only the call and its few moves: a longer region is ordinary code that happens to hold a slow path.
        if len(region) <= SLOW_PATH_LENGTH and any(_SLOW_PATH_ROUTINE.search(item.callee or "") for item in region):
            ranges.append((index + 1, end))
        elif rare_lines and _rare(region, rare_lines):
            ranges.append((index + 1, end))
    return ranges


def count_loop(program: Program, loop: Loop, all_loops: list[Loop] | None = None,
               rare_lines: frozenset = frozenset()) -> LoopCount:
    """The usual path's instructions of one trip through ``loop`` (see the module docstring);
    ``rare_lines``: (file, line) pairs of code that runs only in rare cases."""
    all_loops = loops(program) if all_loops is None else all_loops
    return _count_range(program, loop, all_loops, rare_lines, ())


def count_function(program: Program, name: str, rare_lines: frozenset = frozenset()) -> LoopCount:
    """The usual path's instructions of one call of function ``name`` of the listing: its whole
    body, by the rules of ``count_loop`` (its own loops are nested loops here)."""
    return _count_range(program, _function_range(program, name), loops(program), rare_lines, ())


def _function_range(program: Program, name: str) -> Loop:
    if name not in program.functions:
        raise KeyError(f"{name} is not a function of the listing (calls into other listings are not counted)")
    first, end = program.functions[name]
    return Loop(first, end - 1)


def _count_range(program: Program, loop: Loop, all_loops: list[Loop], rare_lines: frozenset,
                 callers: tuple[str, ...]) -> LoopCount:
    """count_loop on instructions loop.head .. loop.back; ``callers``: the functions whose calls led
    here (a recursive call cannot be counted: its depth is data)."""
    excluded = set()
    nested = []
    for inner in all_loops:
        if inner != loop and loop.head <= inner.head and inner.back <= loop.back:
            if not any(inner.head <= index <= inner.back for index in excluded):
                nested.append(inner.back - inner.head + 1)
            excluded.update(range(inner.head, inner.back + 1))
    for begin, end in _slow_paths(program, loop.head, loop.back, rare_lines):
        excluded.update(range(begin, end))
    result = LoopCount(0, Tally(), nested)
    for index in range(loop.head, loop.back + 1):
        if index in excluded:
            continue
        instruction = program.instructions[index]
        if instruction.opcode == "NOP" or _padding(program, index):
            continue
        result.instructions += 1
        result.by_source[instruction.source] += 1
        callee = instruction.callee
        if callee is not None:
            if callee in callers:
                raise ValueError(f"recursive call of {callee}: its path depends on the data")
            inner = _count_range(program, _function_range(program, callee), all_loops, rare_lines, callers + (callee,))
            result.instructions += inner.instructions
            result.by_source.update(inner.by_source)
            result.nested.extend(inner.nested)
    return result
