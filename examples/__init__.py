"""Course material built on fnn, not part of the library: the seeds' worked examples,
the toy computational-graph engine, the seed figures, the gradient-check grid.

Importable from the repository root (`import examples.seeds`); the scripts in
scripts/ and the tests use it, `import fnn` never does.
"""
