"""Request and response bodies. Responses are read from the table rows (from_attributes), so
the OpenAPI document describes exactly what is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypeAliasType

from services.core.schema import (
    MESSAGE_TEXT_MAX,
    AppointmentStatus,
    BackupKind,
    BackupStatus,
    Direction,
    OutboxStatus,
    Role,
    TicketAuthor,
    TicketStatus,
)

Item = TypeVar("Item")
INT32_MAX = 2**31 - 1
# The largest id the API accepts: exact in JSON numbers everywhere (JavaScript's safe integers).
# Row ids never get there, and Telegram ids have at most 52 significant bits.
ID_MAX = 2**53 - 1
# PostgreSQL text cannot hold NUL characters: refused as invalid input up front.
NO_NUL = r"^[^\x00]*$"
PlainText = Annotated[str, StringConstraints(pattern=NO_NUL)]
# Text a person typed: at least one character that is not whitespace.
Text = Annotated[str, StringConstraints(min_length=1, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")]
# Any JSON value whose strings PostgreSQL can store (runtime settings).
JsonValue = TypeAliasType(
    "JsonValue",
    "PlainText | int | float | bool | list[JsonValue] | JsonObject | None",
)
# Described with propertyNames: pydantic's patternProperties would leave other keys allowed.
JsonObject = Annotated[
    dict[PlainText, JsonValue],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        }
    ),
]


class Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page"
    )


class UserOut(Row):
    id: int
    telegram_id: int
    username: str | None
    first_name: str
    last_name: str | None
    language_code: str | None
    is_active: bool
    is_blocked: bool
    credits: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


class TicketOut(Row):
    id: int
    user_id: int
    assigned_staff_id: int | None
    status: TicketStatus
    subject: str
    solution: str | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None


class TicketMessageOut(Row):
    id: int
    ticket_id: int
    author: TicketAuthor
    staff_id: int | None
    text: str
    created_at: datetime


class TicketDetail(TicketOut):
    messages: list[TicketMessageOut]


class AppointmentOut(Row):
    id: int
    user_id: int
    resource: str
    starts_at: datetime
    ends_at: datetime
    status: AppointmentStatus
    created_at: datetime
    updated_at: datetime


class PaymentOut(Row):
    id: int
    user_id: int
    product_id: int | None
    telegram_payment_charge_id: str
    currency: str
    amount: int
    credits: int
    created_at: datetime


class UserDetail(BaseModel):
    user: UserOut
    tickets: list[TicketOut]
    appointments: list[AppointmentOut]
    payments: list[PaymentOut]


class CreditAdjustment(BaseModel):
    delta: int = Field(
        ge=-INT32_MAX,
        le=INT32_MAX,
        description="Credits to add (negative: take); not zero",
        json_schema_extra={"not": {"const": 0}},
    )
    reason: Annotated[Text, StringConstraints(max_length=256)]

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("must not be zero")
        return delta


class Assignment(BaseModel):
    staff_id: int = Field(ge=1, le=ID_MAX)


class Reply(BaseModel):
    text: Annotated[Text, StringConstraints(max_length=MESSAGE_TEXT_MAX)]


class Closing(BaseModel):
    solution: Annotated[Text, StringConstraints(max_length=MESSAGE_TEXT_MAX)]


class ReplyOut(BaseModel):
    message: TicketMessageOut
    outbox_id: int


class ProductOut(Row):
    id: int
    code: str
    title: str
    description: str
    price_stars: int
    credits: int
    is_active: bool
    created_at: datetime
    updated_at: datetime


class ProductCreate(BaseModel):
    code: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,64}$")]
    title: Annotated[Text, StringConstraints(max_length=128)]
    description: PlainText = Field("", max_length=1024)
    price_stars: int = Field(gt=0, le=INT32_MAX)
    credits: int = Field(gt=0, le=INT32_MAX)


class ProductUpdate(BaseModel):
    # Every field may be left out; none may be null (SkipJsonSchema: the schema says so, and
    # patching.changes refuses a null).
    model_config = ConfigDict(extra="forbid")

    title: Annotated[Text, StringConstraints(max_length=128)] | SkipJsonSchema[None] = None
    description: Annotated[PlainText, Field(max_length=1024)] | SkipJsonSchema[None] = None
    price_stars: Annotated[int, Field(gt=0, le=INT32_MAX)] | SkipJsonSchema[None] = None
    credits: Annotated[int, Field(gt=0, le=INT32_MAX)] | SkipJsonSchema[None] = None
    is_active: bool | SkipJsonSchema[None] = None


class AuditOut(Row):
    id: int
    staff_id: int | None
    actor: str
    action: str
    entity: str
    entity_id: str | None
    summary: dict[str, Any]
    created_at: datetime


class FlagOut(Row):
    key: str
    enabled: bool
    description: str
    updated_at: datetime


class FlagChange(BaseModel):
    enabled: bool
    description: PlainText | None = Field(None, max_length=256)


class SettingOut(Row):
    key: str
    value: Any
    description: str
    updated_at: datetime


class SettingChange(BaseModel):
    value: JsonValue = Field(description="Any JSON value")
    description: PlainText | None = Field(None, max_length=256)


# Keys of flags and settings: short, lowercase, dotted.
ConfigKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]


class StaffOut(Row):
    id: int
    name: str
    role: Role
    telegram_id: int | None
    is_active: bool
    created_at: datetime


class StaffCreate(BaseModel):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    role: Role
    telegram_id: int | None = Field(None, ge=1, le=ID_MAX)


class StaffUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | SkipJsonSchema[None] = None
    is_active: bool | SkipJsonSchema[None] = None
    # The staff member's Telegram account (they act from the staff group); null unlinks it.
    telegram_id: int | None = Field(None, ge=1, le=ID_MAX)


class ApiKeyOut(Row):
    id: int
    staff_id: int
    name: str
    key_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreate(BaseModel):
    name: Annotated[Text, StringConstraints(max_length=64)]


class ApiKeyIssued(ApiKeyOut):
    key: str = Field(description="The API key; shown only in this response, never again")


class BackupRunOut(Row):
    id: int
    kind: BackupKind
    status: BackupStatus
    label: str
    started_at: datetime
    finished_at: datetime | None
    size_bytes: int | None
    details: dict[str, Any]
    error: str | None


class ConversationMessageOut(Row):
    id: int
    direction: Direction
    text: str | None
    context: dict[str, Any]
    created_at: datetime


class CreditChangeOut(Row):
    id: int
    delta: int
    balance_after: int
    reason: str
    payment_id: int | None
    created_at: datetime


class OutboxOut(Row):
    id: int
    chat_id: int
    user_id: int | None
    method: str
    payload: dict[str, Any]
    status: OutboxStatus
    created_at: datetime
    sent_at: datetime | None
