"""The leaders' report: reads an output folder and renders one self-contained HTML file
(inputs, render, charts, words, templates/). A pure function of the folder.

May import features, data and errors; never models, whatif, mlops, scoring or commands
(checked by import-linter in `make test`).
"""
