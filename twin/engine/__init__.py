"""The reply engine: the model in memory, the active adapter hot-swapped, decoding with a
KV cache, one reply at a time behind an asyncio front. No Telegram knowledge: callers
shape the reply's parts into messages for their medium."""
