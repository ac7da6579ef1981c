"""`python -m services.admin_api.keys create --role admin --name ops`: makes a staff member
(if new) and an API key for them, and prints the key as the last line. This is how the first
admin key of a new deployment is made; it writes its own audit entry."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.core.db import Database
from services.core.errors import CoreError
from services.core.schema import Role
from services.core.settings import DatabaseSettings

from .auth import issue_key, staff_for_cli

# The actor of audit entries written from the command line.
CLI_ACTOR = "cli"


async def create(role: Role, name: str) -> str:
    database = Database(DatabaseSettings())
    try:
        async with database.unit_of_work() as uow:
            staff = await staff_for_cli(uow, name, role)
            assert staff.id is not None
            issued = await issue_key(uow, staff.id, f"{name} (cli)")
            uow.audit.record(
                None,
                CLI_ACTOR,
                "api_key.create",
                "api_key",
                issued.record.id,
                {"staff_id": staff.id, "role": role, "key_prefix": issued.record.key_prefix},
            )
        return issued.key
    finally:
        await database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.admin_api.keys")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="create an API key; the key is the last line")
    make.add_argument("--role", required=True, choices=[role.value for role in Role])
    make.add_argument("--name", required=True, help="the staff member's name")
    args = parser.parse_args(argv)
    try:
        key = asyncio.run(create(Role(args.role), args.name))
    except CoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"API key for {args.name} ({args.role}); it is shown only now:")
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
