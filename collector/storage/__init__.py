"""DuckDB storage: schema and upgrades, the single writer, and every read query (as .sql files)."""
