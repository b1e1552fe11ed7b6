"""The Dagster layer: thin assets over cluster_assets.core and cluster_assets.sources."""
