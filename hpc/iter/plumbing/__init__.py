"""The machinery under ``hpc.iter``: chunking, plans, backends. Users of parallel iterators never need it.

See README.md in this folder for how a chain executes.
"""
