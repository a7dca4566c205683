"""Writing artifacts: the one atomic writer, Parquet with provenance, PNG encoding."""
