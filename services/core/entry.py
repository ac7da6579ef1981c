"""What every service's `python -m` entry point shares: `--help` listing the environment
variables its settings read (with their defaults, secrets not shown), and settings checked
before anything starts, a refusal being one line that names the variables and never echoes a
value (pydantic's own message quotes the input, which may be a token)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from .settings import InsecureSettingsError

Settings = type[BaseSettings]


def variables(settings: Settings) -> list[tuple[str, str]]:
    """(environment variable, default as shown) for each field of a settings class."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    found = []
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        variable = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            shown = "(development value; required outside development)"
        elif default is None:
            shown = "unset"
        elif isinstance(default, tuple):
            shown = ",".join(map(str, default))
        else:
            shown = str(default)
        found.append((variable, shown))
    return found


def describe(error: ValidationError | InsecureSettingsError, settings: Settings) -> str:
    """One line naming each refused variable and why, without the values."""
    if isinstance(error, InsecureSettingsError):
        return str(error)
    prefix = str(settings.model_config.get("env_prefix", ""))
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        location = item["loc"]
        if location:
            field = settings.model_fields.get(str(location[0]))
            alias = field.validation_alias if field else None
            variable = alias if isinstance(alias, str) else f"{prefix}{location[0]}".upper()
            message = f"{variable}: {message}"
        problems.append(message)
    return "; ".join(problems)


def parse_command_line(
    prog: str, description: str, settings: Sequence[Settings], argv: Sequence[str] | None = None
) -> None:
    """--help for a service (it takes no other arguments), then each settings class built
    once: a refused setting exits with status 2 and one line on stderr."""
    listing = "\n".join(
        f"  {variable:<34} {default}" for cls in settings for variable, default in variables(cls)
    )
    parser = argparse.ArgumentParser(
        prog=f"python -m {prog}",
        description=description,
        epilog=f"Settings (environment variables, with their defaults):\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    check_settings(prog, settings)


def check_settings(prog: str, settings: Sequence[Settings]) -> None:
    """Each settings class built once: a refused setting exits with status 2 and one line."""
    for cls in settings:
        try:
            cls()
        except (ValidationError, InsecureSettingsError) as error:
            print(f"{prog}: not started: {describe(error, cls)}", file=sys.stderr)
            sys.exit(2)
