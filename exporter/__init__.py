"""Getting chats into twin: the Telegram Desktop export importer and the Telethon userbot."""
