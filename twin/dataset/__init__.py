"""Chats become samples: conversations split at silences, turns merged, personal data
scrubbed, the split by time, the style measured. Reads storage; knows no model and no
prompt text (twin.prompt makes a sample's context)."""
