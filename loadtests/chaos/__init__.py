"""make chaos: fault injection into the local stack under Telegram-like load (python -m
loadtests.chaos --help)."""
