"""The OTLP receiver and the DuckDB store: everything between an exporter and a query."""
