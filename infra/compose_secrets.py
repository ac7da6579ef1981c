"""`make secrets`: the secrets compose.yaml mounts, as files in a directory only its owner can
enter, and the operator's settings in .env.

    BOT_TOKEN=... BOT_PUBLIC_URL=https://... ALERT_CHAT_ID=-100... make secrets
    BOT_TOKEN=... TLS_DOMAIN=bot.example.com ALERT_CHAT_ID=-100... make secrets   (TLS proxy)

The offsite copy (docs/offsite-backups.md), on the same command or a later one:

    OFFSITE_ENDPOINT=s3.example.com OFFSITE_BUCKET=... OFFSITE_REGION=... \
        OFFSITE_ACCESS_KEY=... OFFSITE_SECRET_KEY=... make secrets    (a provider's store)
    OBJECT_STORE=object-store make secrets     (the s3 profile's SeaweedFS, reached by that name)

What the operator does not choose (the roles' passwords, the webhook's secret, Grafana's
admin password) is generated with `secrets` (the OS's CSPRNG), once: a file that exists is
kept, since the database was initialised with it. What they must choose is refused when
missing: the bot token (read from BOT_TOKEN, or asked for on a terminal; never echoed), where
Telegram reaches the webhook (TLS_DOMAIN, which turns the TLS proxy on, or BOT_PUBLIC_URL) and
the staff chat alerts go to. The offsite repository's encryption passphrase is generated once
(keep a copy off the server: without it the offsite backups cannot be read); its access key
and secret are the provider's (OFFSITE_ACCESS_KEY, OFFSITE_SECRET_KEY: written when given,
never echoed), or generated for the s3 profile's own store. OBJECT_STORE=<name> also makes a
CA and a certificate for that name (openssl), turns the s3 profile on and points the offsite
settings at it. Standard library only: it runs before `make install`.

The directory is mode 0700, so no other account of the host reads it; the files in it are
0444 because compose bind-mounts them into containers that run as other uids (PostgreSQL's
999, the services' 65534), which must read the ones they are given.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

GENERATED = (
    "postgres_password",
    "db_password",
    "migrate_password",
    "backup_password",
    "monitor_password",
    "grafana_admin_password",
    # The offsite repository's encryption key (pgBackRest's repo2-cipher-pass).
    "offsite_passphrase",
)
WEBHOOK_SECRET = "bot_webhook_secret"
BOT_TOKEN = "bot_token"
# The object store's credentials: the provider's when given, else generated (the s3 profile's
# store accepts them).
OFFSITE_CREDENTIALS = {
    "offsite_access_key": "OFFSITE_ACCESS_KEY",
    "offsite_secret_key": "OFFSITE_SECRET_KEY",
}
# The CA the backup service verifies a self-hosted store with; empty for a provider's (the
# system's CAs). A file in every case: the backup service mounts it.
OFFSITE_CA = "offsite_ca"
# The s3 profile's TLS certificate and key (OBJECT_STORE only).
OBJECT_STORE_TLS = ("object_store_cert", "object_store_key")
ALL = (*GENERATED, WEBHOOK_SECRET, BOT_TOKEN, *OFFSITE_CREDENTIALS, OFFSITE_CA, *OBJECT_STORE_TLS)
OBJECT_STORE_PORT = 8333
OBJECT_STORE_BUCKET = "botstack-offsite"
# The offsite settings .env takes from the environment of `make secrets` when given.
OFFSITE_SETTINGS = ("OFFSITE_ENDPOINT", "OFFSITE_BUCKET", "OFFSITE_REGION", "OFFSITE_URI_STYLE")
TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]{20,}")
DOMAIN_SHAPE = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


class Refused(Exception):
    """A value the operator must give is missing or malformed (the message never holds it)."""


def _token(environ: Mapping[str, str], ask: bool) -> str:
    token = environ.get("BOT_TOKEN", "").strip()
    if not token and ask:
        token = getpass.getpass("Bot token from @BotFather (not shown): ").strip()
    if not token:
        raise Refused("BOT_TOKEN is required: the token @BotFather gave for the bot")
    if not TOKEN_SHAPE.fullmatch(token):
        raise Refused("BOT_TOKEN is not a bot token (<digits>:<at least 20 of A-Z a-z 0-9 _ ->)")
    return token


def _settings(environ: Mapping[str, str], secrets_dir: Path) -> dict[str, str]:
    """The .env lines this command owns."""
    domain = environ.get("TLS_DOMAIN", "").strip().lower()
    public_url = environ.get("BOT_PUBLIC_URL", "").strip()
    chat = environ.get("ALERT_CHAT_ID", "").strip()
    values = {"SECRETS_DIR": str(secrets_dir)}
    if domain:
        if not DOMAIN_SHAPE.fullmatch(domain):
            raise Refused(f"TLS_DOMAIN {domain!r} is not a domain name (e.g. bot.example.com)")
        values |= {
            "TLS_DOMAIN": domain,
            "BOT_PUBLIC_URL": f"https://{domain}",
            "COMPOSE_PROFILES": "tls",
        }
    elif public_url:
        if not re.fullmatch(r"https?://\S+", public_url):
            raise Refused("BOT_PUBLIC_URL must be an http(s):// URL")
        values["BOT_PUBLIC_URL"] = public_url
    else:
        raise Refused(
            "TLS_DOMAIN (the domain of this server: the TLS proxy gets its certificate) or "
            "BOT_PUBLIC_URL (your own HTTPS proxy's address) is required"
        )
    if not re.fullmatch(r"-?\d+", chat):
        raise Refused("ALERT_CHAT_ID is required: the Telegram chat id alerts go to (-100...)")
    values["ALERT_CHAT_ID"] = chat
    store = environ.get("OBJECT_STORE", "").strip()
    if store:
        if not DOMAIN_SHAPE.fullmatch(store) and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", store):
            raise Refused(f"OBJECT_STORE {store!r} is not a host name (e.g. object-store)")
        profiles = [p for p in values.get("COMPOSE_PROFILES", "").split(",") if p]
        values |= {
            "COMPOSE_PROFILES": ",".join([*profiles, "s3"]),
            "OFFSITE_ENDPOINT": f"{store}:{OBJECT_STORE_PORT}",
            "OFFSITE_BUCKET": OBJECT_STORE_BUCKET,
            "OFFSITE_CA_FILE": f"/run/secrets/{OFFSITE_CA}",
        }
    for name in OFFSITE_SETTINGS:
        if environ.get(name, "").strip():
            values[name] = environ[name].strip()
    if ("OFFSITE_ENDPOINT" in values) != ("OFFSITE_BUCKET" in values):
        raise Refused("OFFSITE_ENDPOINT and OFFSITE_BUCKET go together (or OBJECT_STORE=...)")
    return values


def _write_secret(path: Path, value: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(value)
    temp.chmod(0o444)
    temp.replace(path)


def _update_env(env_file: Path, values: Mapping[str, str]) -> None:
    """Sets these keys in the .env file, keeping every other line as it is."""
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    pending = dict(values)
    kept = []
    for line in lines:
        key = line.split("=", 1)[0].strip()
        if key in pending:
            kept.append(f"{key}={pending.pop(key)}")
        else:
            kept.append(line)
    kept += [f"{key}={value}" for key, value in pending.items()]
    env_file.write_text("\n".join(kept) + "\n")


def create(
    secrets_dir: Path, env_file: Path, environ: Mapping[str, str], ask: bool = False
) -> list[str]:
    """Writes what is missing; returns the names of the secrets it generated."""
    token = _token(environ, ask)
    settings = _settings(environ, secrets_dir.resolve())
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secrets_dir.chmod(0o700)
    made = []
    for name in GENERATED:
        if not (secrets_dir / name).exists():
            _write_secret(secrets_dir / name, secrets.token_urlsafe(32))
            made.append(name)
    if not (secrets_dir / WEBHOOK_SECRET).exists():
        # Telegram's secret_token: 1 to 256 of A-Z a-z 0-9 _ - (token_urlsafe's alphabet).
        _write_secret(secrets_dir / WEBHOOK_SECRET, secrets.token_urlsafe(48))
        made.append(WEBHOOK_SECRET)
    _write_secret(secrets_dir / BOT_TOKEN, token)
    for name, variable in OFFSITE_CREDENTIALS.items():
        given = environ.get(variable, "").strip()
        if given:
            _write_secret(secrets_dir / name, given)
        elif not (secrets_dir / name).exists():
            _write_secret(secrets_dir / name, secrets.token_urlsafe(32))
            made.append(name)
    store = environ.get("OBJECT_STORE", "").strip()
    if store and not (secrets_dir / OBJECT_STORE_TLS[0]).exists():
        _object_store_tls(secrets_dir, store)
        made += [OFFSITE_CA, *OBJECT_STORE_TLS]
    if not (secrets_dir / OFFSITE_CA).exists():
        _write_secret(secrets_dir / OFFSITE_CA, "")  # a provider's store: the system's CAs
    _update_env(env_file, settings)
    return made


def _object_store_tls(secrets_dir: Path, name: str) -> None:
    from infra.tls import TlsError, make_certificate

    ca, cert, key = [secrets_dir / f".{file}.tmp" for file in (OFFSITE_CA, *OBJECT_STORE_TLS)]
    try:
        make_certificate(ca, cert, key, [name, "localhost"])
    except TlsError as error:
        raise Refused(f"OBJECT_STORE: {error}") from None
    for temp, file in zip((ca, cert, key), (OFFSITE_CA, *OBJECT_STORE_TLS), strict=True):
        temp.chmod(0o444)  # read by the store's and the backup service's uids
        temp.replace(secrets_dir / file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("secrets"), help="default: ./secrets")
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="default: ./.env")
    args = parser.parse_args(argv)
    try:
        made = create(args.dir, args.env_file, os.environ, ask=sys.stdin.isatty())
    except Refused as error:
        print(f"make secrets: {error}", file=sys.stderr)
        return 2
    print(
        f"secrets in {args.dir}/ (generated now: {', '.join(made) or 'none, all kept'}); "
        f"settings in {args.env_file}"
    )
    if "offsite_passphrase" in made:
        print(
            f"Keep a copy of {args.dir}/ (offsite_passphrase above all) off this server: the "
            "offsite backups cannot be decrypted without it (docs/offsite-backups.md)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
