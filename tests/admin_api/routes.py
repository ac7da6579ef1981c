"""Every mutating route of the OpenAPI document, with a request that should succeed on a
freshly arranged set of rows. A route without an entry here fails the tests that walk them,
so a new route cannot skip its role and audit checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from . import seed

MUTATING = ("post", "put", "patch", "delete")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None
    # The audit entry the call must write.
    entity: str
    entity_id: str


def mutating_routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, operations in openapi["paths"].items()
        for method in operations
        if method in MUTATING
    ]


@dataclass(frozen=True)
class World:
    user_id: int
    tickets: dict[str, int]
    product_id: int
    staff_id: int
    key_id: int
    appointment_ids: dict[str, int]


async def arrange(owner: asyncpg.Connection) -> World:
    user_id = await seed.user(owner, 1001, username="walker", first_name="Wally")
    tickets = {name: await seed.ticket(owner, user_id) for name in ("assign", "reply", "close")}
    staff_id = await owner.fetchval(
        "INSERT INTO staff (name, role) VALUES ('helper', 'operator') RETURNING id"
    )
    key_id = await owner.fetchval(
        "INSERT INTO api_keys (staff_id, name, key_hash, key_prefix)"
        " VALUES ($1, 'old', repeat('a', 64), 'bsk_old') RETURNING id",
        staff_id,
    )
    appointment_ids = {
        name: await owner.fetchval(
            "INSERT INTO appointments (user_id, starts_at, ends_at)"
            " VALUES ($1, now() + make_interval(days => $2), now() + make_interval(days => $2)"
            " + interval '1 hour') RETURNING id",
            user_id,
            day,
        )
        for day, name in enumerate(("confirm", "cancel"), start=1)
    }
    return World(
        user_id=user_id,
        tickets=tickets,
        product_id=await seed.product(owner),
        staff_id=staff_id,
        key_id=key_id,
        appointment_ids=appointment_ids,
    )


def _user(action: str, body: dict[str, Any] | None = None) -> Callable[[World], Call]:
    return lambda w: Call("post", f"/users/{w.user_id}/{action}", body, "user", str(w.user_id))


def _ticket(action: str, body: dict[str, Any]) -> Callable[[World], Call]:
    return lambda w: Call(
        "post", f"/tickets/{w.tickets[action]}/{action}", body, "ticket", str(w.tickets[action])
    )


def _appointment(action: str) -> Callable[[World], Call]:
    return lambda w: Call(
        "post",
        f"/appointments/{w.appointment_ids[action]}/{action}",
        None,
        "appointment",
        str(w.appointment_ids[action]),
    )


# (method, path template) -> the call for it. Keys the world creates (ids) are unknown until
# the rows exist; created entities' ids are read back from the response (entity_id "new").
CALLS: dict[tuple[str, str], Callable[[World], Call]] = {
    ("post", "/users/{user_id}/block"): _user("block"),
    ("post", "/users/{user_id}/unblock"): _user("unblock"),
    ("post", "/users/{user_id}/credits"): _user("credits", {"delta": 5, "reason": "goodwill"}),
    ("post", "/tickets/{ticket_id}/assign"): lambda w: _ticket("assign", {"staff_id": w.staff_id})(
        w
    ),
    ("post", "/tickets/{ticket_id}/reply"): _ticket("reply", {"text": "Try turning it off"}),
    ("post", "/tickets/{ticket_id}/close"): _ticket("close", {"solution": "Fixed in 1.2"}),
    ("post", "/products"): lambda w: Call(
        "post",
        "/products",
        {"code": "pack50", "title": "50 credits", "price_stars": 200, "credits": 50},
        "product",
        "new",
    ),
    ("patch", "/products/{product_id}"): lambda w: Call(
        "patch", f"/products/{w.product_id}", {"price_stars": 75}, "product", str(w.product_id)
    ),
    ("post", "/products/{product_id}/deactivate"): lambda w: Call(
        "post", f"/products/{w.product_id}/deactivate", None, "product", str(w.product_id)
    ),
    ("put", "/flags/{key}"): lambda w: Call(
        "put", "/flags/payments.enabled", {"enabled": True}, "feature_flag", "payments.enabled"
    ),
    ("put", "/settings/{key}"): lambda w: Call(
        "put",
        "/settings/booking.hours",
        {"value": {"open": "09:00", "close": "17:00", "slot_minutes": 30, "timezone": "UTC"}},
        "runtime_setting",
        "booking.hours",
    ),
    ("post", "/staff"): lambda w: Call(
        "post", "/staff", {"name": "newbie", "role": "viewer"}, "staff", "new"
    ),
    ("patch", "/staff/{staff_id}"): lambda w: Call(
        "patch", f"/staff/{w.staff_id}", {"role": "viewer"}, "staff", str(w.staff_id)
    ),
    ("post", "/staff/{staff_id}/keys"): lambda w: Call(
        "post", f"/staff/{w.staff_id}/keys", {"name": "laptop"}, "api_key", "new"
    ),
    ("post", "/keys/{key_id}/revoke"): lambda w: Call(
        "post", f"/keys/{w.key_id}/revoke", None, "api_key", str(w.key_id)
    ),
    ("post", "/appointments/{appointment_id}/confirm"): _appointment("confirm"),
    ("post", "/appointments/{appointment_id}/cancel"): _appointment("cancel"),
    # Last: the erased user's tickets can no longer be answered.
    ("post", "/users/{user_id}/erase"): _user("erase"),
}

# Routes an operator may not call (the rest of the mutating routes they may).
ADMIN_ONLY = {
    ("post", "/users/{user_id}/erase"),
    ("post", "/products"),
    ("patch", "/products/{product_id}"),
    ("post", "/products/{product_id}/deactivate"),
    ("put", "/flags/{key}"),
    ("put", "/settings/{key}"),
    ("post", "/staff"),
    ("patch", "/staff/{staff_id}"),
    ("post", "/staff/{staff_id}/keys"),
    ("post", "/keys/{key_id}/revoke"),
}
