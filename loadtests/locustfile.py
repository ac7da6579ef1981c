"""Locust's side of a load run (started by loadtests/run.py, configured by LOADTEST_PLAN).

Telegram users play Telegram: each is one private chat whose updates are made by the Bot API
stand-in (so update ids grow as Telegram's do, and the stand-in knows the messages, button
presses and invoices the bot will answer), then POSTed by the user to the bot's webhook with
the secret-token header: one update in flight per chat, at most max_connections (40) in
flight overall, redelivered after a backoff on any non-2xx or broken connection, as Telegram
does. The mix: /start from every new chat, texts, commands, /book and a slot press, /buy with
the product press, the pre-checkout query and the successful payment, /support with /close,
and exact redeliveries of updates already acknowledged. Every delivery attempt goes to the
ledger that run.py checks against the database.

Staff users are a few people on the admin API with think time: user lists and search,
tickets and replies, analytics, appointments.

The shape plays the profile's phases; users pace themselves to its target rate.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import time
from typing import Any

import gevent
import requests
from gevent.lock import BoundedSemaphore
from gevent.queue import Full, Queue
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.exception import StopUser

from loadtests.profiles import Profile, phase_at
from services.bot.booking import BOOK
from services.bot.payments import BUY

PLAN: dict[str, Any] = json.loads(os.environ.get("LOADTEST_PLAN", "{}"))
PROFILE = Profile.from_json(json.dumps(PLAN["profile"])) if PLAN else None
# Telegram's default webhook max_connections: at most this many deliveries in flight.
MAX_CONNECTIONS = 40
IN_FLIGHT = BoundedSemaphore(MAX_CONNECTIONS)
# Telegram waits longer between redeliveries; a load run keeps the backoff short.
BACKOFF_SECONDS = (0.5, 1, 2, 4, 8)
LEDGER: list[dict[str, Any]] = []
CHAT_IDS = itertools.count(int(PLAN.get("user_base", 6_000_000_000)))
# (weight, action) per turn after /start.
MIX = (
    (35, "text"),
    (15, "command"),
    (15, "book"),
    (10, "buy"),
    (0.6, "support"),
    (5, "redelivery"),
)
TEXTS = ("hello", "what can you do?", "thanks!", "is anyone there", "good morning", "ok")
COMMANDS = ("/help", "/profile", "/my")


class Pacer:
    """One greenlet hands out a turn every 1/rate seconds, the rate read anew from the
    profile each time; each update's first delivery takes one, in the order the users asked
    (gevent's queue is FIFO), so the overall rate follows the target whatever the number of
    chats. A turn nobody is ready for is dropped: the achieved rate then shows that the users
    could not keep up."""

    def __init__(self) -> None:
        self._turns: Queue[None] = Queue(maxsize=1)
        self._producer: gevent.Greenlet | None = None

    def wait(self) -> None:
        if self._producer is None:
            self._producer = gevent.spawn(self._produce)
        self._turns.get()

    def _produce(self) -> None:
        assert PROFILE is not None
        while True:
            with contextlib.suppress(Full):
                self._turns.put_nowait(None)
            gevent.sleep(1.0 / phase_at(PROFILE, Clock.elapsed())[2])


PACER = Pacer()


class Clock:
    """Seconds since the shape's first tick: where in the profile the run is."""

    started: float | None = None

    @classmethod
    def elapsed(cls) -> float:
        if cls.started is None:
            cls.started = time.monotonic()
        return time.monotonic() - cls.started


class TelegramUser(FastHttpUser):
    """One chat with the bot."""

    weight = 1
    wait_time = constant(0)  # the pacer spaces the updates
    # Webhook requests only: the stand-in's control calls go through `_control`, unmeasured.
    connection_timeout = 30.0
    network_timeout = 60.0

    def on_start(self) -> None:
        self.chat_id = next(CHAT_IDS)
        self.name = f"Load {self.chat_id % 100000}"
        self.control = requests.Session()
        self.acked: list[dict[str, Any]] = []
        self.steps: list[str] = ["/start"]

    def on_stop(self) -> None:
        self.control.close()

    @task
    def turn(self) -> None:
        step = self.steps.pop(0) if self.steps else _choose()
        if step == "/start":
            self._say("/start", "start")
        elif step == "text":
            self._say(f"{random.choice(TEXTS)} #{random.randrange(10**6)}", "text")
        elif step == "command":
            self._say(random.choice(COMMANDS), "command")
        elif step == "book":
            self._say("/book", "book")
            self.steps.append("press-slot")
        elif step == "press-slot":
            self._press(BOOK, "slot")
        elif step == "buy":
            self._say("/buy", "buy")
            self.steps.append("press-product")
        elif step == "press-product":
            if self._press(BUY, "product"):
                self.steps.append("pay")
        elif step == "pay":
            self._pay()
        elif step == "support":
            self._say(f"/support I need help with my booking #{random.randrange(10**6)}", "support")
            self.steps.append("close")
        elif step == "close":
            self._say("/close", "close")
        elif step == "redelivery" and self.acked:
            self._deliver(random.choice(self.acked), "redelivery", redelivery=True)

    # What the user does, through the stand-in (which makes the update) -----------------

    def _say(self, text: str, kind: str) -> None:
        self._control("messages", {"user_id": self.chat_id, "text": text, "first_name": self.name})
        self._deliver_pending(kind)

    def _press(self, prefix: str, kind: str) -> bool:
        """Press a button with callback data starting with prefix on the newest message
        that has one; False when the bot offered none (no free slot, no product)."""
        messages = self._control_get(f"chats/{self.chat_id}/messages")
        for message in reversed(messages):
            rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
            buttons = [b["callback_data"] for row in rows for b in row if "callback_data" in b]
            offered = [data for data in buttons if data.startswith(prefix)]
            if offered:
                body = {
                    "chat_id": self.chat_id,
                    "message_id": message["message_id"],
                    "data": random.choice(offered),
                }
                self._control("buttons", body)
                self._deliver_pending(kind)
                return True
        return False

    def _pay(self) -> None:
        """Pay the newest invoice: the pre-checkout query, then (if the bot said yes) the
        successful_payment Telegram sends."""
        messages = self._control_get(f"chats/{self.chat_id}/messages")
        invoices = [m for m in messages if m.get("invoice")]
        if not invoices:
            return
        body = {"chat_id": self.chat_id, "message_id": invoices[-1]["message_id"]}
        self._control("payments", body)
        self._deliver_pending("pre_checkout")
        self._deliver_pending("payment")

    def _deliver_pending(self, kind: str) -> None:
        for update in self._control("updates/take", {"chat_id": self.chat_id}):
            self._deliver(update, kind)

    # Telegram's side of the webhook ------------------------------------------------

    def _deliver(self, update: dict[str, Any], kind: str, *, redelivery: bool = False) -> None:
        """POST until the webhook answers 2xx, with a backoff between attempts."""
        entry: dict[str, Any] = {
            "update_id": update["update_id"],
            "chat_id": self.chat_id,
            "kind": kind,
            "redelivery": redelivery,
            "attempts": [],
            "acked": False,
        }
        payment = (update.get("message") or {}).get("successful_payment")
        if payment:
            entry["charge_id"] = payment["telegram_payment_charge_id"]
            entry["amount"] = payment["total_amount"]
        LEDGER.append(entry)
        PACER.wait()  # one turn per update Telegram sends; its redeliveries need none
        headers = {"X-Telegram-Bot-Api-Secret-Token": PLAN["secret"]}
        for attempt in itertools.count():
            started = time.time()
            status = 0
            with (
                IN_FLIGHT,
                self.client.post(
                    PLAN["webhook_path"],
                    json=update,
                    headers=headers,
                    name="webhook",
                    catch_response=True,
                ) as response,
            ):
                status = response.status_code or 0
                if 200 <= status < 300:
                    response.success()
                else:
                    response.failure(f"HTTP {status}")
            entry["attempts"].append(
                {"at": started, "ms": (time.time() - started) * 1000, "status": status}
            )
            if 200 <= status < 300:
                entry["acked"] = True
                if not redelivery:
                    self.acked.append(update)
                return
            gevent.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])

    def _control(self, path: str, body: dict[str, Any]) -> Any:
        reply = self.control.post(f"{PLAN['telegram_url']}/__control/{path}", json=body, timeout=30)
        return self._result(reply)

    def _control_get(self, path: str) -> Any:
        return self._result(
            self.control.get(f"{PLAN['telegram_url']}/__control/{path}", timeout=30)
        )

    @staticmethod
    def _result(reply: requests.Response) -> Any:
        data = reply.json()
        if not data.get("ok"):
            # The stand-in refused what this user did: a bug of the load test, not load.
            raise StopUser(f"stand-in refused: {data.get('description')}")
        return data["result"]


def _choose() -> str:
    weights, actions = zip(*MIX, strict=True)
    return str(random.choices(actions, weights=weights)[0])


class StaffUser(FastHttpUser):
    """A member of staff on the admin API, with think time."""

    # Exactly the profile's number, whatever the Telegram users' count.
    fixed_count = PROFILE.staff_users if PROFILE else 0
    wait_time = between(3, 8)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {PLAN['admin_key']}"}

    def _get(self, path: str, name: str) -> Any:
        with self.client.get(
            f"{PLAN['admin_url']}{path}", headers=self.headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return None
            return response.json()

    @task(3)
    def users(self) -> None:
        self._get("/users?limit=20", "admin users")
        self._get("/users?q=Load&limit=20", "admin users search")

    @task(2)
    def tickets(self) -> None:
        page = self._get("/tickets?status=open&limit=10", "admin tickets")
        if not page or not page["items"]:
            return
        ticket = random.choice(page["items"])
        with self.client.post(
            f"{PLAN['admin_url']}/tickets/{ticket['id']}/reply",
            json={"text": "Thanks for writing, we are on it."},
            headers=self.headers,
            name="admin ticket reply",
            catch_response=True,
        ) as response:
            # 409: the user closed it meanwhile; that is the API saying so, not a failure.
            if response.status_code in (201, 409):
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")

    @task(2)
    def analytics(self) -> None:
        for report in ("users", "revenue", "tickets", "top-users"):
            self._get(f"/analytics/{report}", f"admin analytics {report}")

    @task(1)
    def appointments(self) -> None:
        self._get("/appointments?limit=50", "admin appointments")


class ProfileShape(LoadTestShape):
    """The profile's phases; for `capacity`, stops at the first step whose webhook p99 or
    error ratio crosses the thresholds and writes the steps to the plan's capacity file."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.steps: list[dict[str, Any]] = []
        self._step_index = -1
        self._step_counts = (0, 0)

    def tick(self) -> tuple[int, float, list[type]] | None:
        assert PROFILE is not None
        elapsed = Clock.elapsed()
        if elapsed >= PROFILE.seconds:
            self._close_step(elapsed)
            return None
        index, phase, _ = phase_at(PROFILE, elapsed)
        if PROFILE.capacity and index != self._step_index:
            if self._close_step(elapsed) is False:
                return None  # the step before crossed a threshold: that is the capacity
            self._step_index = index
            self._step_counts = self._counts()
            self.steps.append({"name": phase.name, "rate": phase.rate, "start": time.time()})
        return phase.users + PROFILE.staff_users, 50.0, [TelegramUser, StaffUser]

    def _stats(self) -> Any:
        assert self.runner is not None
        return self.runner.stats.get("webhook", "POST")

    def _counts(self) -> tuple[int, int]:
        entry = self._stats()
        return entry.num_requests, entry.num_failures

    def _close_step(self, elapsed: float) -> bool | None:
        """Judge the step that just ended; False if it crossed a threshold."""
        if not PROFILE or not PROFILE.capacity or not self.steps or "end" in self.steps[-1]:
            return None
        step = self.steps[-1]
        requests_now, failures_now = self._counts()
        requests_, failures = (
            requests_now - self._step_counts[0],
            failures_now - self._step_counts[1],
        )
        entry = self._stats()
        step.update(
            end=time.time(),
            requests=requests_,
            achieved=requests_ / max(1.0, time.time() - step["start"]),
            p99_ms=entry.get_current_response_time_percentile(0.99) or 0.0,
            error_ratio=failures / max(1, requests_),
        )
        limits = PROFILE.thresholds
        step["passed"] = (
            step["p99_ms"] <= limits.webhook_p99_ms
            and step["error_ratio"] <= limits.webhook_error_ratio
            and step["achieved"] >= limits.min_rate_ratio * step["rate"]
        )
        with open(PLAN["capacity_file"], "w") as handle:
            json.dump(self.steps, handle)
        return bool(step["passed"])


@events.test_stop.add_listener  # type: ignore[untyped-decorator]
def _write_ledger(**_: Any) -> None:
    with open(PLAN["ledger"], "w") as handle:
        for entry in LEDGER:
            handle.write(json.dumps(entry) + "\n")
