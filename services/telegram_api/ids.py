"""Message ids that never go back: Telegram's never do, and the bot's database outlives a
restarted stand-in (a support ticket keeps its forum topic's id, a ticket message its message
id). Every bot's chats continue above the highest id the bot was ever handed out before, kept
in the state directory. The file holds a ceiling reserved in blocks ahead of the ids given,
so it is written once per BLOCK ids of the busiest chat, not once per message."""

from __future__ import annotations

import os
from pathlib import Path

BLOCK = 1000


class IdFloor:
    """The ids one bot has handed out, across restarts. Without a state directory (tests that
    start a fresh stand-in) nothing is kept and every chat starts at 1, as a new chat does."""

    def __init__(self, state_dir: Path | None, bot_id: int) -> None:
        self.path = None
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            self.path = state_dir / f"bot{bot_id}-message-ids"
        self.floor = self._read()
        self._ceiling = self.floor

    def claim(self, message_id: int) -> None:
        """message_id is handed out (or seen): a restart must start above it."""
        if self.path is not None and message_id > self._ceiling:
            self._ceiling = message_id + BLOCK
            # Written whole and renamed: a crash mid-write leaves the old ceiling, never a
            # truncated number.
            partial = self.path.with_suffix(".tmp")
            partial.write_text(f"{self._ceiling}\n")
            os.replace(partial, self.path)

    def _read(self) -> int:
        if self.path is None:
            return 0
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return 0
        try:
            return int(text)
        except ValueError:
            raise ValueError(
                f"{self.path} holds {text.strip()[:40]!r}, not the last message id: "
                "remove it only if the bot's database is new too"
            ) from None
