"""Team-month features and targets: the YAML specs (`features/*.yaml`), the dense team x month
grid, the panel both models learn from and score on, the one feature-name grammar with its
labels, and the contract's targets. Pure: frames in, frames out.

May import `forecast.data` and `forecast.errors` only; never models, whatif, mlops, scoring,
report, commands or the simulator.
"""
