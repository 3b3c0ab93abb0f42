"""Fixed row blocks shared by all parallel kernels (see :data:`fastem.kernels._jit.BLOCK_ROWS`)."""
from ._jit import BLOCK_ROWS, kernel


@kernel
def n_blocks(n_rows):
    """Number of fixed-size row blocks covering ``n_rows`` rows."""
    return (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS


@kernel
def block_bounds(block, n_rows):
    """Half-open row range ``[start, stop)`` of ``block``."""
    start = block * BLOCK_ROWS
    return start, min(n_rows, start + BLOCK_ROWS)
