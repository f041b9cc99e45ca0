"""Training: samples become token batches, LoRA fine-tuning under Lightning Fabric, a
run from lock to registered adapter, and the evaluation that decides promotion."""
