"""The leaders' report: reads an output folder and renders one self-contained HTML file
(inputs, render, charts, words, templates/). A pure function of the folder. assets, static/
and templates/_shared.html are what the served view (forecast.serve) shares with it.

May import features, data and errors; never models, whatif, mlops, scoring or commands
(checked by import-linter in `make test`).
"""
