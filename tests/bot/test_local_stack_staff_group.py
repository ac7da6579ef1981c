"""The local stack as `make up` runs it: its bot opens support topics in the staff group its
Alertmanager posts alerts to, with nothing set by hand."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from infra.monitoring import DEFAULT_STAFF_CHAT_ID

from .conftest import eventually

USER = 9161


async def test_support_topics_open_in_the_staff_group_of_the_alerts_by_default(
    endpoints: dict[str, str], owner: asyncpg.Connection
) -> None:
    async with httpx.AsyncClient(base_url=endpoints["telegram_api_url"]) as telegram:

        async def calls(chat_id: int, method: str) -> list[dict[str, Any]]:
            reply = await telegram.get(
                "/__control/calls", params={"chat_id": str(chat_id), "method": method}
            )
            found: list[dict[str, Any]] = reply.json()["result"]
            return [call for call in found if call["ok"]]

        async def say(said: str, answers: int) -> None:
            await telegram.post("/__control/messages", json={"user_id": USER, "text": said})

            async def answered() -> bool:
                return len(await calls(USER, "sendMessage")) >= answers

            await eventually(answered)

        topics_before = len(await calls(DEFAULT_STAFF_CHAT_ID, "createForumTopic"))
        await say("/start", 1)
        await say("/support Where is my order?", 2)

        async def topic_created() -> bool:
            return len(await calls(DEFAULT_STAFF_CHAT_ID, "createForumTopic")) > topics_before

        await eventually(topic_created)
        created = (await calls(DEFAULT_STAFF_CHAT_ID, "createForumTopic"))[-1]

    assert created["params"]["name"].endswith(f"({USER})")
    stored = await owner.fetchrow(
        "SELECT t.chat_id, t.message_thread_id FROM forum_topics t "
        "JOIN users u ON u.id = t.user_id WHERE u.telegram_id = $1",
        USER,
    )
    assert stored is not None
    assert stored["chat_id"] == DEFAULT_STAFF_CHAT_ID
    assert stored["message_thread_id"] == created["result"]["message_thread_id"]
