"""The input edge: the contract's tables (read and validated from files or a database: `sources`),
months, identifiers, importers of public HR exports, lineage (hashes and the manifest writer) and
atomic file writes.

Bottom layer above `forecast.errors`: it must never import features, models, whatif, mlops,
scoring, report, commands or the simulator.
"""
