"""Chats become samples: conversations split at silences, turns merged, personal data
scrubbed, the prompt rendered, the style measured. Reads storage; knows no model."""
