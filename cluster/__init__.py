"""Sweeps over factor combinations, run on Ray; and the ``moelaw`` command-line program.

``cluster`` turns a sweep spec (:mod:`cluster.spec`) into training runs, runs them as Ray
tasks (:mod:`cluster.sweep`) and writes every result to a :class:`results.store.Store`.
Nothing here imports torch or Ray at module import time.
"""
