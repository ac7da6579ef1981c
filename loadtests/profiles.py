"""The load profiles: phases (ramp, plateau at the nominal rate, a spike well above it,
recovery) with their target rate of Telegram updates and number of chats, the staff users,
and the thresholds a run is judged by. `capacity` steps the rate up instead, until the
webhook's p99 or its error rate crosses its threshold.

The nominal rate stays under Telegram's 30 messages a second (the stand-in enforces it): nearly
every update is answered with a message, so a plateau above 30/s would only grow the outbox.
The spike goes past it on purpose: replies are refused with 429, deferred to the outbox and
sent during recovery.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Phase:
    name: str  # ramp, plateau, spike, recovery, or step-N for capacity
    seconds: float
    rate: float  # updates per second at the end of the phase (a ramp rises to it linearly)
    users: int  # Telegram chats active: each has at most one update in flight


@dataclass(frozen=True)
class Thresholds:
    # Webhook p99 at the plateau, client side (Locust). Set from measurement on this 2-core
    # machine: 21.8 ms at the standard plateau (15/s), 25.6 ms at smoke's (5/s), 85 ms at the
    # standard spike (45/s); 100 ms, over four times the plateau's, flags a regression without
    # failing on a noisy shared machine.
    webhook_p99_ms: float = 100.0
    # Non-2xx answers of the webhook, outside phases that inject faults (none do yet).
    webhook_error_ratio: float = 0.001
    # The achieved rate at the plateau against its target.
    min_rate_ratio: float = 0.95


@dataclass(frozen=True)
class Profile:
    name: str
    phases: tuple[Phase, ...]
    staff_users: int
    # After the last phase: time for redeliveries to be acknowledged and the outbox to empty.
    drain_seconds: float
    # Soak: a base backup and a restore drill are taken during the plateau (seconds into it).
    backup_at: float | None = None
    drill_at: float | None = None
    capacity: bool = False  # step the rate up until a threshold is crossed
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Profile:
        data: dict[str, Any] = json.loads(text)
        data["phases"] = tuple(Phase(**phase) for phase in data["phases"])
        data["thresholds"] = Thresholds(**data["thresholds"])
        return cls(**data)


def _standard(name: str, plateau_seconds: float, **extra: Any) -> Profile:
    return Profile(
        name=name,
        phases=(
            Phase("ramp", 60, 15, 60),
            Phase("plateau", plateau_seconds, 15, 60),
            Phase("spike", 60, 45, 150),
            Phase("recovery", 120, 15, 60),
        ),
        staff_users=3,
        drain_seconds=90,
        **extra,
    )


PROFILES: dict[str, Profile] = {
    # In CI: every check of a standard run, at a third of its rate, in about two minutes.
    "smoke": Profile(
        name="smoke",
        phases=(
            Phase("ramp", 10, 5, 20),
            Phase("plateau", 40, 5, 20),
            Phase("spike", 15, 15, 50),
            Phase("recovery", 20, 5, 20),
        ),
        staff_users=1,
        drain_seconds=40,
    ),
    "standard": _standard("standard", 300),
    "soak": _standard("soak", 3600, backup_at=600, drill_at=1800),
    # 60 s steps of +10 updates/s from 10/s; the shape stops at the first step whose p99 or
    # error rate crosses the thresholds (send limits on, as for every profile).
    "capacity": Profile(
        name="capacity",
        phases=tuple(
            Phase(f"step-{rate}", 60, rate, max(20, rate * 4)) for rate in range(10, 201, 10)
        ),
        staff_users=1,
        drain_seconds=120,
        capacity=True,
    ),
}


def phase_at(profile: Profile, elapsed: float) -> tuple[int, Phase, float]:
    """The phase `elapsed` seconds into the run, its index, and its target rate at that
    moment (a ramp's rises linearly); past the end, the last phase."""
    start = 0.0
    previous_rate = 0.0
    for index, phase in enumerate(profile.phases):
        if elapsed < start + phase.seconds or index == len(profile.phases) - 1:
            if phase.name == "ramp":
                share = min(1.0, max(0.0, (elapsed - start) / phase.seconds))
                return index, phase, max(0.5, previous_rate + (phase.rate - previous_rate) * share)
            return index, phase, phase.rate
        start += phase.seconds
        previous_rate = phase.rate
    raise ValueError("a profile has at least one phase")


def phase_windows(profile: Profile, started: float) -> list[tuple[str, float, float]]:
    """(name, start, end) in wall-clock seconds of each phase of a run that began at started."""
    windows = []
    at = started
    for phase in profile.phases:
        windows.append((phase.name, at, at + phase.seconds))
        at += phase.seconds
    return windows
