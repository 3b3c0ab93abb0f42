"""Fixed row blocks shared by all parallel kernels (see :data:`fastem.kernels._jit.BLOCK_ROWS`)."""
from ._jit import BLOCK_ROWS, kernel, python_calls


@kernel
def n_blocks(n_rows):
    """Number of fixed-size row blocks covering ``n_rows`` rows."""
    return (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS


@kernel
def block_bounds(block, n_rows):
    """Half-open row range ``[start, stop)`` of ``block``."""
    start = block * BLOCK_ROWS
    return start, min(n_rows, start + BLOCK_ROWS)


def one_item_per_block(first, *args):
    """``prepare`` of parallel kernels without scratch (``_jit.run_on_threads``): one work
    item per row block of their first argument."""
    return (n_blocks(first.shape[0]),)


@kernel
def n_chunks(n_rows, max_chunks):
    """Number of chunks when at most ``max_chunks`` partials are wanted.

    A chunk is a run of whole blocks; the layout depends on ``n_rows`` only (never on the
    thread count), so folding chunk partials in order stays deterministic. Used by kernels
    whose per-partial statistics are large (e.g. k d x d scatter matrices).
    """
    return n_unit_chunks(n_rows, BLOCK_ROWS, max_chunks)


@kernel
def n_unit_chunks(n_rows, unit_rows, max_chunks):
    """:func:`n_chunks` with chunks made of runs of ``unit_rows`` rows instead of blocks."""
    units = (n_rows + unit_rows - 1) // unit_rows
    per_chunk = (units + max_chunks - 1) // max_chunks
    return (units + per_chunk - 1) // per_chunk if n_rows > 0 else 0


#: Most partial statistic tables one fused pass keeps ...
MAX_PARTIALS = 64
#: ... fewer when they would take more than this many bytes together (zeroing and folding
#: them, and the page faults of allocating them, then cost more than the pass itself) ...
PARTIAL_BUDGET = 16 * 2**20
#: ... but never fewer than this (the parallelism of one pass).
MIN_PARTIALS = 4
#: Most bytes of tables for which :func:`partial_units` splits row blocks. Intel AVX-512 VM,
#: a GaussianMixture full EM iteration on 2,048 rows, d = 512, k = 64 (k d^2 tables of 134
#: MB): one chunk 1.40 s, two 1.28 s (scikit-learn 1.70-1.80 s); k = 16: 0.37 -> 0.29 s.
SPLIT_BUDGET = 512 * 2**20


@kernel
def n_partials(n_rows, table_bytes):
    """Chunks of a fused pass whose per-chunk statistics table has ``table_bytes`` bytes.

    Between ``MIN_PARTIALS`` and ``MAX_PARTIALS``, fewer when the tables together would
    exceed ``PARTIAL_BUDGET``; a function of its arguments only (never of the thread count).
    """
    budget = PARTIAL_BUDGET // max(1, table_bytes)
    return n_chunks(n_rows, min(MAX_PARTIALS, max(MIN_PARTIALS, budget)))


@kernel
def chunk_bounds(chunk, n_rows, n_chunk):
    """Half-open row range of ``chunk`` out of ``n_chunk`` (from :func:`n_chunks`)."""
    return unit_chunk_bounds(chunk, n_rows, n_chunk, BLOCK_ROWS)


@kernel
def unit_chunk_bounds(chunk, n_rows, n_chunk, unit_rows):
    """Half-open row range of ``chunk`` out of ``n_chunk`` runs of ``unit_rows``-row units."""
    units = (n_rows + unit_rows - 1) // unit_rows
    per_chunk = (units + n_chunk - 1) // n_chunk
    start = chunk * per_chunk * unit_rows
    return start, min(n_rows, start + per_chunk * unit_rows)


@kernel
def scratch_rows(lo, hi, n_rows, n_chunk, unit_rows):
    """Rows of one block's scratch for chunks [lo, hi): their longest, at most BLOCK_ROWS
    (a few-row pass then allocates, and page-faults, no more than it uses)."""
    rows = 0
    for c in range(lo, hi):
        start, stop = unit_chunk_bounds(c, n_rows, n_chunk, unit_rows)
        rows = max(rows, min(BLOCK_ROWS, stop - start))
    return rows


@kernel
def partial_units(n_rows, table_bytes, min_unit_rows):
    """(chunks, rows per unit) of a pass whose rows are expensive enough to split blocks.

    Like :func:`n_partials`, but when whole blocks give fewer than ``MIN_PARTIALS`` chunks
    the unit is halved, down to ``min_unit_rows``, so that a pass over a few thousand rows
    of costly rows (a full-covariance E-step at d = 512) still runs on several threads -
    while the tables stay within ``SPLIT_BUDGET`` (beyond it, allocating, zeroing and
    folding them cost more than the second thread saves). A function of its arguments only.
    """
    budget = PARTIAL_BUDGET // max(1, table_bytes)
    max_chunks = min(MAX_PARTIALS, max(MIN_PARTIALS, budget))
    unit = BLOCK_ROWS
    units = (n_rows + unit - 1) // unit
    while (unit // 2 >= min_unit_rows and units < MIN_PARTIALS
           and 2 * units * table_bytes <= SPLIT_BUDGET):
        unit //= 2
        units = (n_rows + unit - 1) // unit
    return n_unit_chunks(n_rows, unit, max_chunks), unit


@kernel
def fold_rows(partials, out):
    """``out[j] = sum over b of partials[b, j]`` (2-D partials, 1-D out), in row order."""
    out[:] = 0.0
    for b in range(partials.shape[0]):
        for j in range(partials.shape[1]):
            out[j] += partials[b, j]


@kernel
def fold_blocks(partials, out):
    """``out[...] = sum over b of partials[b, ...]``, summed in block order (serial).

    Keeping the fold out of the parallel kernels keeps each of them a single ``prange`` loop
    (every array expression in a ``parallel=True`` function would become a parallel region
    of its own, costing compile time and a thread launch). Both arrays must be C-contiguous.
    """
    fold_rows(partials.reshape(partials.shape[0], -1), out.reshape(-1))


def _fold_blocks_from_python(partials, out):
    # one compiled specialisation (2-D, 1-D) for every shape, instead of one per ndim
    if not (partials.flags.c_contiguous and out.flags.c_contiguous):
        raise ValueError("fold_blocks needs C-contiguous arrays")
    fold_rows(partials.reshape(partials.shape[0], -1), out.reshape(-1))


python_calls(fold_blocks, _fold_blocks_from_python)
