"""The work items of a segment table for the Triton kernels, built once per (table, device).

A launch covers every factor of the layout: its grid is (work items) x (blocks of rows). A work
item is either a run of consecutive element-wise columns of one kind (real, interval,
half-line, lattice, binary), cut into pieces of at most 16 columns, or one categorical or
sphere group. Each item has a *class*, the power-of-two tile width its kernel branch uses: the
tile starts at the item's first column rounded down to a multiple of 4 (so each Philox call
serves four neighbouring columns) and masks the columns outside the item. Groups wider than
the largest tile are processed in chunks (an online softmax over chunks). A categorical group
of at most 8 columns that does not fill whole blocks of four takes a class of its own width and
first column % 4 instead, and is walked column by column with a row per lane (no lane outside it).

Example:
    >>> import omegabridge as ob
    >>> from omegabridge.kernels.plan import build_plan
    >>> plan = build_plan(ob.Product([ob.HalfLine(low=0.0), ob.Categorical(3)]).segment_table(), "cpu")
    >>> plan.items.tolist()
    [[2, 0, 1, 0], [6, 1, 4, 21]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from omegabridge.core.segments import Kind, SegmentTable

# Class 0: a lone column (a tile one column wide, so no lane computes a masked-out column's mean:
# a table's continuous columns often alternate kinds). Classes 1, 2: up to 4 and 16 columns.
ELEMENTWISE_BLOCKS = (1, 4, 16)
SINGLE_COLUMN_CLASS = 0
# Classes 3, 4: pieces whose first and end columns are multiples of 4, so the kernel can prove
# every Philox block of four columns whole and aligned and load and store it as one 16-byte
# vector (bench/results/instructions-sm90.md).
ALIGNED_BLOCKS = (4, 16)
GROUP_BLOCKS = (8, 16, 32, 64, 256, 1024)  # classes 5..10
FIRST_ALIGNED_CLASS_INDEX = len(ELEMENTWISE_BLOCKS)
WIDE_GROUP_CLASS = len(ELEMENTWISE_BLOCKS) + len(ALIGNED_BLOCKS) + len(GROUP_BLOCKS)  # class 11: chunks of WIDE_CHUNK
WIDE_CHUNK = 1024
# Classes 12..43: a categorical group of at most SMALL_GROUP_WIDTH columns that does not fill whole Philox
# blocks (uses_small_group_class), walked column by column with a row per lane (kernels/bridge.py,
# _small_group_item); one class per (width, first column % 4), so that the kernel knows when it is compiled
# which Philox block and word each column takes. In a tile of whole Philox blocks such a group takes 8 or 16
# lanes, most of them outside it (a group of 2 at column 63: lanes 60..67), and its max and sum cross lanes;
# here each column costs its own work only (bench/results/instructions-sm90.md). The last step keeps the tile.
FIRST_SMALL_GROUP_CLASS_INDEX = WIDE_GROUP_CLASS + 1
SMALL_GROUP_WIDTH = 8
SMALL_GROUP_CLASS_COUNT = 4 * SMALL_GROUP_WIDTH
FINAL_TILE_OF_SMALL_GROUP = 16  # start % 4 + 8 <= 11 lanes of whole Philox blocks
SMALL_GROUP_GPU_ROWS_VALUE = 128  # the threads of a program on a GPU (kernels/bridge.py, GPU_SETTINGS: 4 warps)
# The same, as constexprs for the kernels' class branches.
TILE_WIDTHS = tl.constexpr(ELEMENTWISE_BLOCKS + ALIGNED_BLOCKS + GROUP_BLOCKS)
FIRST_ALIGNED_CLASS = tl.constexpr(FIRST_ALIGNED_CLASS_INDEX)
FIRST_GROUP_CLASS = tl.constexpr(len(ELEMENTWISE_BLOCKS) + len(ALIGNED_BLOCKS))
WIDE_CLASS = tl.constexpr(WIDE_GROUP_CLASS)
WIDE_TILE = tl.constexpr(WIDE_CHUNK)
FIRST_SMALL_GROUP_CLASS = tl.constexpr(FIRST_SMALL_GROUP_CLASS_INDEX)
SMALL_GROUP_CLASSES = tl.constexpr(SMALL_GROUP_CLASS_COUNT)
SMALL_GROUP_FINAL_TILE = tl.constexpr(FINAL_TILE_OF_SMALL_GROUP)
SMALL_GROUP_GPU_ROWS = tl.constexpr(SMALL_GROUP_GPU_ROWS_VALUE)
GROUP_KINDS = (Kind.CATEGORICAL, Kind.SPHERE)
# Per-column float32 parameters, one row each of Plan.parameters.
LOW, HIGH, STEP, INVERSE_STEP, LAST = range(5)
# Gauss-Legendre nodes and weights on [0, 1], 24 points (as special.h).
QUADRATURE_NODES = (
    2.406390001e-03, 1.263572201e-02, 3.086272400e-02, 5.679223650e-02, 8.999900701e-02, 1.299379042e-01,
    1.759531740e-01, 2.272892643e-01, 2.831032462e-01, 3.424786602e-01, 4.044405663e-01, 4.679715536e-01,
    5.320284464e-01, 5.955594337e-01, 6.575213398e-01, 7.168967538e-01, 7.727107357e-01, 8.240468260e-01,
    8.700620958e-01, 9.100009930e-01, 9.432077635e-01, 9.691372760e-01, 9.873642780e-01, 9.975936100e-01,
)
QUADRATURE_WEIGHTS = (
    6.170614900e-03, 1.426569431e-02, 2.213871941e-02, 2.964929246e-02, 3.667324071e-02, 4.309508077e-02,
    4.880932605e-02, 5.372213506e-02, 5.775283403e-02, 6.083523646e-02, 6.291872817e-02, 6.396909767e-02,
    6.396909767e-02, 6.291872817e-02, 6.083523646e-02, 5.775283403e-02, 5.372213506e-02, 4.880932605e-02,
    4.309508077e-02, 3.667324071e-02, 2.964929246e-02, 2.213871941e-02, 1.426569431e-02, 6.170614900e-03,
)


def small_group_rows(tile: int, rows_per_program: int) -> int:
    """Rows per trip of a small group's loop (``SUB_ROWS`` of kernels/bridge.py's ``_small_group_item``): a row per
    thread on a GPU, a quarter of the tile in the interpreter."""
    return min(SMALL_GROUP_GPU_ROWS_VALUE if tile <= 1024 else tile // 4, rows_per_program)


def uses_small_group_class(kind: Kind, begin: int, end: int) -> bool:
    """Whether a group [begin, end) takes a small-group class: a categorical group of at most SMALL_GROUP_WIDTH
    columns that does not fill whole Philox blocks (a tile holds those without a lane to spare)."""
    width = end - begin
    return kind == Kind.CATEGORICAL and width <= SMALL_GROUP_WIDTH and not (begin % 4 == 0 and width % 4 == 0)


def small_group_class(begin: int, end: int) -> int:
    """The class of a categorical group [begin, end) of at most SMALL_GROUP_WIDTH columns."""
    return FIRST_SMALL_GROUP_CLASS_INDEX + 4 * (end - begin - 1) + begin % 4


@triton.jit
def program_item(items_ptr, item_count, ROWS_PER_PROGRAM: tl.constexpr):
    """(kind, first column, end column, class, first row) of this program: the grid is
    items x row blocks, item fastest, so programs running together share rows."""
    program = tl.program_id(0)
    item = program % item_count
    kind = tl.load(items_ptr + 4 * item)
    start = tl.load(items_ptr + 4 * item + 1)
    end = tl.load(items_ptr + 4 * item + 2)
    item_class = tl.load(items_ptr + 4 * item + 3)
    return kind, start, end, item_class, (program // item_count) * ROWS_PER_PROGRAM


@dataclass
class Plan:
    """Device arrays of one layout: ``items`` (int32, items x 4: kind, first column, end column, class),
    ``parameters`` (float32, 5 x width: low, high, step, 1/step, last lattice index), ``lattice``
    (float64, 2 x width: lattice low and step, for canonical points), ``quadrature`` (float32, 48),
    and the constexpr masks of the kinds and classes present. ``wide_sphere`` names a sphere wider
    than the widest tile (its exact last step is not implemented in Triton), or is empty."""

    items: torch.Tensor
    parameters: torch.Tensor
    lattice: torch.Tensor
    quadrature: torch.Tensor
    kinds: int
    classes: int
    width: int
    wide_sphere: str


def _aligned(column: int) -> int:
    return column - column % 4


def _class_of(begin: int, end: int, blocks, first_class: int) -> int | None:
    needed = end - _aligned(begin)
    for index, block in enumerate(blocks):
        if needed <= block:
            return first_class + index
    return None


def _elementwise_pieces(begin: int, end: int):
    """[begin, end) cut at multiples of 16 (from the aligned start), so each piece fits the widest element-wise tile."""
    start = begin
    while start < end:
        stop = min(end, _aligned(start) + ELEMENTWISE_BLOCKS[-1])
        yield start, stop
        start = stop


def _items(table: SegmentTable) -> list[tuple[int, int, int, int]]:
    items = []
    run_kind, run_begin, run_end = None, 0, 0

    def flush():
        if run_kind is not None:
            for begin, end in _elementwise_pieces(run_begin, run_end):
                if end - begin == 1:
                    item_class = SINGLE_COLUMN_CLASS
                elif begin % 4 == 0 and end % 4 == 0:
                    item_class = _class_of(begin, end, ALIGNED_BLOCKS, FIRST_ALIGNED_CLASS_INDEX)
                else:
                    item_class = _class_of(begin, end, ELEMENTWISE_BLOCKS[1:], SINGLE_COLUMN_CLASS + 1)
                items.append((int(run_kind), begin, end, item_class))

    for segment in table.elements:
        if segment.kind in GROUP_KINDS:
            flush()
            run_kind = None
            begin, end = segment.offset, segment.offset + segment.width
            group_class = _class_of(begin, end, GROUP_BLOCKS, FIRST_GROUP_CLASS.value)
            if uses_small_group_class(segment.kind, begin, end):
                group_class = small_group_class(begin, end)
            items.append((int(segment.kind), begin, end, WIDE_GROUP_CLASS if group_class is None else group_class))
        elif segment.kind == run_kind and segment.offset == run_end:
            run_end += segment.width
        else:
            flush()
            run_kind, run_begin, run_end = segment.kind, segment.offset, segment.offset + segment.width
    flush()
    return items


def build_plan(table: SegmentTable, device) -> Plan:
    """The plan of ``table`` on ``device``, cached on the table (one per device)."""
    device = torch.device(device)
    cache = table.__dict__.setdefault("_triton_plans", {})
    key = str(device)
    if key in cache:
        return cache[key]
    width = table.width
    parameters = torch.zeros(5, width + 4, dtype=torch.float64)
    lattice = torch.zeros(2, width + 4, dtype=torch.float64)
    wide_sphere = ""
    for segment in table.elements:
        columns = slice(segment.offset, segment.offset + segment.width)
        if segment.kind == Kind.INTERVAL:
            parameters[LOW, columns], parameters[HIGH, columns] = segment.low, segment.high
        elif segment.kind == Kind.HALFLINE_LOWER:
            parameters[LOW, columns] = segment.low
        elif segment.kind == Kind.HALFLINE_UPPER:
            parameters[HIGH, columns] = segment.high
        elif segment.kind == Kind.LATTICE:
            parameters[LOW, columns], parameters[HIGH, columns] = segment.low, segment.high
            parameters[STEP, columns], parameters[INVERSE_STEP, columns] = segment.step, 1.0 / segment.step
            parameters[LAST, columns] = segment.points - 1
            lattice[0, columns], lattice[1, columns] = segment.low, segment.step
        elif segment.kind == Kind.SPHERE and _class_of(segment.offset, segment.offset + segment.width, GROUP_BLOCKS, 0) is None:
            wide_sphere = wide_sphere or table.describe_column(segment.offset)
    items = _items(table)
    plan = Plan(
        items=torch.tensor(items, dtype=torch.int32, device=device).reshape(-1, 4),
        parameters=parameters.to(torch.float32).to(device),
        lattice=lattice.to(device),
        quadrature=torch.tensor(QUADRATURE_NODES + QUADRATURE_WEIGHTS, dtype=torch.float32, device=device),
        kinds=sum(1 << int(kind) for kind in {segment.kind for segment in table.segments}),
        classes=sum(1 << item_class for item_class in {item[3] for item in items}),
        width=width,
        wide_sphere=wide_sphere,
    )
    cache[key] = plan
    return plan
