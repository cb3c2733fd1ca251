"""MLflow: where the tracking store lives and how to reach it, the registry of model pairs (two
models + meta + what-if fits as one folder), the pyfunc wrappers and the promotion gate.

May import models, whatif, features, data and errors; never scoring, report or commands.
"""
