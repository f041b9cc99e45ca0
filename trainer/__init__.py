"""Training: dataset, prompt, base-model checkpoints, LoRA finetune, evaluation,
adapters, reply generation."""
