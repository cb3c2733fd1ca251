"""forecast: team-level attrition and CSAT-dip forecasts with drivers, tracked in MLflow."""

__version__ = "0.1.0"
