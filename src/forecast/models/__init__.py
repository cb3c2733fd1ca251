"""The two LightGBM models and everything judged from their out-of-sample errors: configuration,
fitting, the registered pair, intervals, the rolling-origin backtest, TreeSHAP explanations,
drift and the fairness audit. Pure apart from a pair's own files.

May import `forecast.features`, `forecast.data` and `forecast.errors`; never the what-if engine
(the registry bundles the two), mlops, scoring, report, commands or the simulator.
"""
