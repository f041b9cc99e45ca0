"""The model: base checkpoints (the embedded GGUF, litgpt folders, hub ids), the LoRA
model twin trains and serves, device and precision, the bf16 embedding of float32
training, int8 decoding weights, and the adapter registry. What training and serving
both load; nothing here knows chats."""
