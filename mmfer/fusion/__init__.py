"""Late fusion of branch score CSVs, tuned on Val only."""
