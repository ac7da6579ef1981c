"""Telegram's HTML parse mode: the text without tags plus its entities, or Telegram's
"can't parse entities" error (a classic production bug: user input with "<" or "&" sent
unescaped in an HTML message)."""

from __future__ import annotations

import html
import re

from aiogram.types import MessageEntity

from .envelope import ApiError, bad_request

_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",  # only with class="tg-spoiler"
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_START = re.compile(
    r"<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*>"
)
_END = re.compile(r"</([a-zA-Z][a-zA-Z0-9-]*)\s*>")
_ATTRIBUTE = re.compile(r"([^\s=>]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")
# Telegram knows these named entities and every numeric one.
_CHARACTER = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_TAG_NAME = re.compile(r"[^\s>]*")


def _error(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entity(
    tag: str, attributes: dict[str, str], offset: int, length: int, inside_pre: bool
) -> MessageEntity:
    kind = _ENTITY_TYPES[tag]
    extra: dict[str, str] = {}
    if tag == "a":
        extra["url"] = attributes.get("href", "")
    elif tag == "tg-emoji":
        extra["custom_emoji_id"] = attributes.get("emoji-id", "")
    elif tag == "blockquote" and "expandable" in attributes:
        kind = "expandable_blockquote"
    elif tag == "code" and inside_pre and attributes.get("class", "").startswith("language-"):
        kind, extra["language"] = "pre", attributes["class"].removeprefix("language-")
    return MessageEntity.model_validate({"type": kind, "offset": offset, "length": length, **extra})


def _same_block(entity: MessageEntity, entities: list[MessageEntity]) -> bool:
    """<pre><code class="language-x"> is one pre entity with a language, not two."""
    last = entities[-1] if entities else None
    return (
        entity.type == "pre"
        and last is not None
        and (last.type, last.offset, last.length) == ("pre", entity.offset, entity.length)
    )


def parse_html(source: str) -> tuple[str, list[MessageEntity]]:
    """The text Telegram shows and its entities; ApiError 400 where Telegram refuses."""
    text: list[str] = []
    length = 0  # in UTF-16 code units, as entity offsets are counted
    open_tags: list[tuple[str, dict[str, str], int]] = []
    entities: list[MessageEntity] = []
    position = 0
    while position < len(source):
        if source[position] == "<":
            at_byte = len(source[:position].encode())
            if end := _END.match(source, position):
                name = end.group(1).lower()
                if not open_tags:
                    raise _error(f"Unexpected end tag at byte offset {at_byte}")
                tag, attributes, offset = open_tags.pop()
                if tag != name:
                    raise _error(
                        f'Unmatched end tag at byte offset {at_byte}, expected "</{tag}>", '
                        f'found "</{name}>"'
                    )
                inside_pre = any(open_tag == "pre" for open_tag, _, _ in open_tags)
                entity = _entity(tag, attributes, offset, length - offset, inside_pre)
                if entity.length > 0 and not _same_block(entity, entities):
                    entities.append(entity)
                position = end.end()
                continue
            start = _START.match(source, position)
            name = start.group(1).lower() if start else ""
            attributes = {
                key.lower(): double or single or bare
                for key, double, single, bare in _ATTRIBUTE.findall(start.group(2) if start else "")
            }
            if (
                start is None
                or name not in _ENTITY_TYPES
                or (name == "span" and attributes.get("class") != "tg-spoiler")
            ):
                shown = _TAG_NAME.match(source, position + 1)
                raise _error(
                    f'Unsupported start tag "{shown.group() if shown else ""}" '
                    f"at byte offset {at_byte}"
                )
            open_tags.append((name, attributes, length))
            position = start.end()
            continue
        character = _CHARACTER.match(source, position)
        piece = html.unescape(character.group()) if character else source[position]
        position = character.end() if character else position + 1
        text.append(piece)
        length += _utf16_length(piece)
    if open_tags:
        raise _error(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    entities.sort(key=lambda entity: (entity.offset, -entity.length))
    return "".join(text), entities
