"""forecast: team-level attrition and CSAT-dip forecasts with drivers, tracked in MLflow."""

import warnings

__version__ = "0.1.0"

# With the optional Spark extra installed, pandera imports pyspark.pandas, which warns that it
# does not fully support pandas 3. We never use pyspark.pandas; keep that noise off users' stderr.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)
