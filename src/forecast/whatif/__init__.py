"""What-ifs: which signals may be set and the one check of a what-if, the causal engine (double
machine learning on the cumulative hazard), its stored fits and its validation against known
effects. It sees the predictive models only through `signals.Forecaster`.

May import `forecast.features`, `forecast.data` and `forecast.errors`; never models, mlops,
scoring, report, commands or the simulator.
"""
