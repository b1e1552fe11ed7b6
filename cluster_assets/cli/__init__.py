"""Command-line entry points: ``demo`` (the main job on the offline default), ``instance`` (the
Dagster instance config), ``cluster_demo`` (the demo on a local Dask cluster), ``research``."""
