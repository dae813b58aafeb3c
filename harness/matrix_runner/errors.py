"""What stops a whole matrix, as opposed to a failure that only marks one run: an error that
means it cannot run, or an interruption once it has started writing its results."""


class MatrixError(Exception):
    """The matrix or the environment cannot be run at all (exit status 2)."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM once the result directory exists: runs_dir holds the runs so far."""

    def __init__(self, runs_dir):
        super().__init__(runs_dir)
        self.runs_dir = runs_dir
