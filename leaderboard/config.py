# -*- test-case-name: tests.test_config -*-
"""Settings from the environment and twistd options, validated once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from leaderboard.model import DEFAULT_LIMIT, MAX_LIMIT

DEFAULT_DATABASE_URL = "sqlite:///leaderboard.sqlite3"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


@dataclass(frozen=True)
class Config:
    port: str
    database_url: str
    grip_url: str | None
    keepalive_seconds: float
    top_n: int
    publish: bool
    seed_demo: bool
    max_streams: int
    #: Bearer keys that may write; empty: writes are open. Never shown in a repr or a log.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    #: Origins allowed to call the API from a browser, or ("*",).
    cors_origins: tuple[str, ...] = ("*",)
    access_log: str = "off"
    #: A native listener whose connection has not drained for this long is dropped.
    stall_seconds: float = 30.0


def _pick(
    options: Mapping[str, object], environ: Mapping[str, str], opt: str, env: str
) -> str | None:
    value = options.get(opt)
    if value is not None:
        return str(value)
    return environ.get(env) or None


def port_endpoint(value: str) -> str:
    """A bare port number becomes ``tcp:N``; anything else must be an endpoint string."""
    value = value.strip()
    if value.isdigit():
        n = int(value)
        if not 0 <= n <= 65535:
            raise ConfigError(f"port {n} is out of range 0..65535")
        return f"tcp:{n}"
    if ":" not in value:
        raise ConfigError(f"port {value!r} is neither a number nor a Twisted endpoint string")
    return value


def _number(name: str, text: str | None, default: float, low: float, high: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}")
    return value


def _flag(name: str, text: str | None, default: bool) -> bool:
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {text!r}")


def load_config(environ: Mapping[str, str], options: Mapping[str, object]) -> Config:
    """Build and validate the configuration; options win over the environment."""
    from leaderboard.store import check_database_url

    port = port_endpoint(_pick(options, environ, "port", "PORT") or "8000")
    database_url = _pick(options, environ, "database-url", "DATABASE_URL") or DEFAULT_DATABASE_URL
    try:
        check_database_url(database_url)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    grip_url = _pick(options, environ, "grip-url", "GRIP_URL")
    if grip_url is not None:
        from leaderboard.feed.grip import parse_grip_urls

        try:
            parse_grip_urls(grip_url)
        except ValueError as e:
            raise ConfigError(f"GRIP_URL: {e}") from None
    keepalive = _number(
        "LEADERBOARD_KEEPALIVE_SECONDS",
        _pick(options, environ, "keepalive", "LEADERBOARD_KEEPALIVE_SECONDS"),
        15.0,
        1.0,
        3600.0,
    )
    top_n = int(
        _number(
            "LEADERBOARD_TOP_N",
            _pick(options, environ, "top-n", "LEADERBOARD_TOP_N"),
            DEFAULT_LIMIT,
            1,
            MAX_LIMIT,
        )
    )
    publish_text = _pick(options, environ, "publish", "LEADERBOARD_PUBLISH")
    publish = _flag("LEADERBOARD_PUBLISH", publish_text, grip_url is not None)
    if publish and grip_url is None:
        raise ConfigError("LEADERBOARD_PUBLISH is on but GRIP_URL is not set")
    seed = _flag(
        "LEADERBOARD_SEED_DEMO", _pick(options, environ, "seed-demo", "LEADERBOARD_SEED_DEMO"), True
    )
    max_streams = int(
        _number(
            "LEADERBOARD_MAX_STREAMS",
            _pick(options, environ, "max-streams", "LEADERBOARD_MAX_STREAMS"),
            20000,
            0,
            10_000_000,
        )
    )
    stall_seconds = _number(
        "LEADERBOARD_STALL_SECONDS",
        _pick(options, environ, "stall-seconds", "LEADERBOARD_STALL_SECONDS"),
        30.0,
        1.0,
        3600.0,
    )
    from leaderboard.resources.auth import parse_api_keys
    from leaderboard.resources.cors import parse_cors_origins

    try:
        # From the environment only: a command-line option would show in ps.
        api_keys = tuple(parse_api_keys(environ.get("LEADERBOARD_API_KEYS")))
    except ValueError as e:
        raise ConfigError(f"LEADERBOARD_API_KEYS: {e}") from None
    try:
        cors_origins = tuple(
            parse_cors_origins(
                _pick(options, environ, "cors-origins", "LEADERBOARD_CORS_ORIGINS")
            )
        )
    except ValueError as e:
        raise ConfigError(f"LEADERBOARD_CORS_ORIGINS: {e}") from None
    # Off by default: in production the proxy in front (Pushpin, Fanout, a load balancer)
    # logs requests, and a line per request costs this process about 4% of its CPU.
    access_log = _pick(options, environ, "access-log", "LEADERBOARD_ACCESS_LOG") or "off"
    return Config(
        port=port,
        database_url=database_url,
        grip_url=grip_url,
        keepalive_seconds=keepalive,
        top_n=top_n,
        publish=publish,
        seed_demo=seed,
        max_streams=max_streams,
        api_keys=api_keys,
        cors_origins=cors_origins,
        access_log=access_log,
        stall_seconds=stall_seconds,
    )
