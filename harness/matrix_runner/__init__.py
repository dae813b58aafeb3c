"""The matrix runner's modules; harness/runner.py is its entry point and its overview.

errors: what stops a whole matrix. columns: what results.csv, summary.csv and meta.json
hold. processes: the servers and child processes a run starts. binaries: what anubis-server and
anubis-load offer. matrix: a matrix file parsed and expanded. run: one run and its checks.
report: environment, summary, printing and CSV. execute: a whole matrix, run by run.
"""

import os

# The repository: bundled matrices, default binaries, results/ and the git state in meta.json.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
