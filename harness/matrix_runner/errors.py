"""The error that stops a whole matrix, as opposed to a failure that only marks one run."""


class MatrixError(Exception):
    """The matrix or the environment cannot be run at all (exit status 2)."""
