"""Batch scoring: the pure batch (panel + pair -> scores, drivers, drift), the files the report
needs beside it (what-ifs, fairness, roll-up attributes), the output folder (deterministic
Parquet, atomic swap under a lock), the scheduling rule of `--catch-up`, the review of past
forecasts and the Spark engine.

May import mlops, models, whatif, features, data and errors; never report or commands.
"""
