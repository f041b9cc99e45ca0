"""What the model sees: a conversation, the owner's memory and facts, in one text."""
