"""Train one decoder-only Mixture-of-Experts language model for one configuration.

Modules: ``config`` (typed run configuration), ``accounting`` (N, Na, FLOPs), ``solve`` (factors to
architecture), ``data`` (byte or token-array files), ``model`` (the transformer), ``train`` (the
training loop).
"""
