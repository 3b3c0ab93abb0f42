"""fastem test suite."""
