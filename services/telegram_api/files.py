"""Files users sent the bot (a receipt photo, a document in a support ticket): registered
through the control API, found with getFile, downloaded from /file/bot{token}/{path}."""

from __future__ import annotations

import secrets

from aiogram.types import File

from .envelope import bad_request


class FileStore:
    def __init__(self) -> None:
        self._files: dict[str, File] = {}
        self._contents: dict[str, bytes] = {}

    def add(self, content: bytes, name: str) -> File:
        file_id = f"local_{secrets.token_urlsafe(12)}"
        stored = File(
            file_id=file_id,
            file_unique_id=secrets.token_hex(8),
            file_size=len(content),
            file_path=f"documents/{len(self._files) + 1}_{name}",
        )
        self._files[file_id] = stored
        self._contents[str(stored.file_path)] = content
        return stored

    def get(self, file_id: str) -> File:
        found = self._files.get(file_id)
        if found is None:
            raise bad_request("invalid file_id")
        return found

    def content(self, path: str) -> bytes | None:
        return self._contents.get(path)
