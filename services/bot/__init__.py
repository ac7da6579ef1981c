"""The Telegram bot: an aiohttp webhook that handles each update in one unit of work."""
