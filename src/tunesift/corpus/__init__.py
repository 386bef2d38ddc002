"""Corpus reading: streamed records from JSONL, Parquet, CSV/TSV, text and HF datasets."""
