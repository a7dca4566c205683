"""Model surgery and passes: the attention engine, masks, loading, batching, sweeps, fine-tuning."""
