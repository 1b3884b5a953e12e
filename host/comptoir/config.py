"""comptoir.toml: every setting with its default, checked at load with errors naming the key.

Unknown keys are errors (a misspelt key silently falling back to its default is how a pharmacy
ends up with the API on the wrong port). Relative paths are relative to the config file.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from comptoir.discovery import DEFAULT_USB_IDS, parse_usb_id


class ConfigError(ValueError):
    """A bad setting; the message starts with the key, e.g. `api.port: ...`."""


@dataclass(frozen=True, slots=True)
class BoardsConfig:
    ports: tuple[str, ...] = ()  # explicit ports (e.g. /dev/comptoir-<serial>); may be empty
    discover: bool = True  # also find boards by USB id
    usb_ids: tuple[tuple[int, int], ...] = DEFAULT_USB_IDS
    baud: int = 115200
    heartbeat_ms: int = 1000
    pairing_dir: Path = Path("/etc/comptoir/boards")
    require_pairing: bool = True


@dataclass(frozen=True, slots=True)
class PathsConfig:
    data_dir: Path = Path("/var/lib/comptoir")  # databases (transactions, billing, rights)
    keys_dir: Path = Path("/var/lib/comptoir/keys")  # 0600 key files
    log_file: Path | None = None  # None: standard error (journald under systemd)


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    enabled: bool = True
    host: str = "127.0.0.1"  # loopback only: 127.0.0.0/8 or ::1
    port: int = 8765
    token_file: Path = Path("/var/lib/comptoir/api-token")
    metrics_auth: bool = False  # /metrics holds no personal data; scrapers are local


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The offline rights cache and the insurer's rights service (docs/rights-cache.md)."""

    enabled: bool = True  # look up every person's rights when a transaction opens
    fresh_for_s: int = 24 * 3600
    offline_max_age_s: int = 7 * 24 * 3600
    credential_max_age_s: int = 90 * 24 * 3600
    timezone: str = "Europe/Paris"
    service_url: str = ""  # the rights service, http(s)://host[:port][/path]; "": cache only
    service_timeout_ms: int = 1000  # per connect and per read
    service_attempts: int = 2  # first try + retries, then the cache alone
    breaker_threshold: int = 3  # failed attempts in a row before the service is left alone
    breaker_cool_down_s: int = 10  # first pause; doubles after each failed trial, up to 300 s
    dispense_wait_ms: int = 1500  # a dispensation waits this long for a refresh under way
    # The background sync of `comptoir run` (with a service_url only):
    opposition_every_s: float = 300.0  # pull the opposition list (lost or stolen phones)
    refresh_every_s: float = 3600.0  # a round of refreshing cached families
    refresh_older_than_s: int = 20 * 3600  # ... whose rights are older than this
    refresh_max_families: int = 1000  # at most this many families per round; 0: no refresh


@dataclass(frozen=True, slots=True)
class TransactionsConfig:
    open_ttl_s: int = 30 * 60  # an open transaction nobody finished is cancelled after this
    retention_s: int = 24 * 3600  # then the personal data of a finished one is dropped


@dataclass(frozen=True, slots=True)
class BillingConfig:
    lot_size: int = 1000
    lot_max_age_s: int = 24 * 3600


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Trust material kept current while running (docs/tokens.md §7)."""

    url: str = ""  # the insurer's publication, http(s)://host[:port][/path]; "": directory only
    check_every_s: float = 60.0  # look at the trust directory, and fetch when the lists are due
    fetch_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ScreenConfig:
    """The counter screen (docs/screen.md): a web page on its own port, on api.host."""

    enabled: bool = True
    port: int = 8766
    session_ttl_s: int = 12 * 3600  # a signed-in page must sign in again after this
    link_ttl_s: int = 300  # a sign-in link printed by `comptoir screen` is good this long, once
    finess: str = ""  # the pharmacy on the screen's care sheets; "": no dispensing from the page
    pharmacist_rpps: str = ""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where the shared state lives (docs/operations.md, several counters). "": this PC's own
    files; "postgresql://user@host[:port]/dbname": one server for every counter. The password
    is never here: `password_file` (mode 0600) or the PGPASSWORD environment variable."""

    url: str = ""
    password_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Config:
    boards: BoardsConfig = field(default_factory=BoardsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    transactions: TransactionsConfig = field(default_factory=TransactionsConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)

    # Where each store lives, derived from the paths section.
    @property
    def transactions_db(self) -> Path:
        return self.paths.data_dir / "transactions.db"

    @property
    def billing_db(self) -> Path:
        return self.paths.data_dir / "billing.db"

    @property
    def rights_db(self) -> Path:
        return self.paths.data_dir / "rights.db"

    @property
    def transactions_key(self) -> Path:
        return self.paths.keys_dir / "transactions.key"

    @property
    def rights_key(self) -> Path:
        return self.paths.keys_dir / "rights.key"

    @property
    def billing_key(self) -> Path:
        return self.paths.keys_dir / "billing.key"


_LEVELS = ("debug", "info", "warning", "error")
# (low, high) for numeric settings.
_RANGES: dict[str, tuple[float, float]] = {
    "boards.baud": (1200, 4_000_000),
    "boards.heartbeat_ms": (100, 60_000),
    "api.port": (0, 65535),  # 0: any free port (tests)
    "cache.fresh_for_s": (0, 10**9),
    "cache.offline_max_age_s": (0, 10**9),
    "cache.credential_max_age_s": (0, 10**9),
    "cache.service_timeout_ms": (50, 30_000),
    "cache.service_attempts": (1, 5),
    "cache.breaker_threshold": (1, 100),
    "cache.breaker_cool_down_s": (1, 300),
    "cache.dispense_wait_ms": (0, 30_000),
    # Fractions of a second are for tests and benches; a pharmacy polls every few minutes.
    "cache.opposition_every_s": (0.05, 24 * 3600),
    "cache.refresh_every_s": (0.05, 7 * 24 * 3600),
    "cache.refresh_older_than_s": (0, 10**9),
    "cache.refresh_max_families": (0, 100_000),
    "transactions.open_ttl_s": (10, 7 * 24 * 3600),
    "transactions.retention_s": (0, 366 * 24 * 3600),
    "billing.lot_size": (1, 10_000),
    "billing.lot_max_age_s": (1, 31 * 24 * 3600),  # seconds are for tests and benches
    "trust.check_every_s": (0.01, 24 * 3600),  # fractions of a second: tests
    "trust.fetch_timeout_s": (0.1, 300),
    "screen.port": (0, 65535),
    "screen.session_ttl_s": (60, 7 * 24 * 3600),
    "screen.link_ttl_s": (10, 3600),
}


def _convert(key: str, default: Any, value: Any, base: Path) -> Any:
    """`value` from TOML as the type of the setting's default."""
    if key == "boards.usb_ids":
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list of \"VID:PID\" strings")
        try:
            return tuple(parse_usb_id(v) for v in value)
        except (ValueError, TypeError, AttributeError):
            raise ConfigError(f"{key}: each entry must be \"VID:PID\" in hex, "
                              "e.g. \"10c4:ea60\"") from None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false")
        return value
    if isinstance(default, float):
        if not isinstance(value, int | float) or isinstance(value, bool) \
                or not math.isfinite(value):
            raise ConfigError(f"{key}: must be a number")
        low, high = _RANGES[key]
        if not low <= value <= high:
            raise ConfigError(f"{key}: must be from {low:g} to {high:g}, not {value:g}")
        return float(value)
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key}: must be an integer")
        low, high = _RANGES.get(key, (0, 2**31))
        if not low <= value <= high:
            raise ConfigError(f"{key}: must be from {low} to {high}, not {value}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: must be a list of strings")
        return tuple(value)
    if isinstance(default, Path) or key in ("paths.log_file", "storage.password_file"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: must be a non-empty path")
        p = Path(value)
        return p if p.is_absolute() else (base / p)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: must be a string")
    return value


def _check(cfg: Config) -> None:
    if cfg.log.level not in _LEVELS:
        raise ConfigError(f"log.level: must be one of {', '.join(_LEVELS)}")
    try:
        loopback = ipaddress.ip_address(cfg.api.host).is_loopback
    except ValueError:
        raise ConfigError(f"api.host: must be a loopback IP address (127.0.0.1 or ::1), "
                          f"not {cfg.api.host!r}") from None
    if not loopback:
        raise ConfigError(f"api.host: {cfg.api.host} is not loopback; the API serves personal "
                          "data and listens on 127.0.0.1 or ::1 only")
    c = cfg.cache
    if not c.fresh_for_s <= c.offline_max_age_s:
        raise ConfigError("cache.fresh_for_s: must not exceed cache.offline_max_age_s")
    if not c.fresh_for_s <= c.credential_max_age_s:
        raise ConfigError("cache.fresh_for_s: must not exceed cache.credential_max_age_s")
    if c.refresh_older_than_s > c.offline_max_age_s:
        raise ConfigError("cache.refresh_older_than_s: must not exceed cache.offline_max_age_s "
                          "(rights would be refused as too old before being refreshed)")
    if c.service_url:
        import urllib.parse

        url = urllib.parse.urlsplit(c.service_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query:
            raise ConfigError(f"cache.service_url: must be http(s)://host[:port][/path], "
                              f"not {c.service_url!r}")
    if cfg.trust.url:
        import urllib.parse

        url = urllib.parse.urlsplit(cfg.trust.url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query:
            raise ConfigError(f"trust.url: must be http(s)://host[:port][/path], "
                              f"not {cfg.trust.url!r}")
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(c.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"cache.timezone: unknown time zone {c.timezone!r}") from None
    _check_storage(cfg.storage)
    if not cfg.boards.discover and not cfg.boards.ports:
        raise ConfigError("boards.ports: empty while boards.discover is false: no board to serve")


def _check_storage(s: StorageConfig) -> None:
    import urllib.parse

    if not s.url:
        if s.password_file is not None:
            raise ConfigError("storage.password_file: set without storage.url")
        return
    url = urllib.parse.urlsplit(s.url)
    if url.scheme not in ("postgresql", "postgres"):
        raise ConfigError("storage.url: must be postgresql://user@host[:port]/dbname")
    query = urllib.parse.parse_qs(url.query)
    if url.password is not None or "password" in query:
        # Never echo the URL: it holds the password.
        raise ConfigError("storage.url: holds a password; put it in storage.password_file "
                          "(mode 0600) or in the PGPASSWORD environment variable, never in "
                          "the TOML")


def from_dict(data: dict[str, Any], base: Path = Path(".")) -> Config:
    sections: dict[str, Any] = {}
    known = {f.name: f for f in fields(Config)}
    for name, table in data.items():
        if name not in known:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(known)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{name}: must be a table ([{name}])")
        default = known[name].default_factory()  # type: ignore[misc]
        options = {f.name: f for f in fields(default)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in options:
                raise ConfigError(f"{name}.{key}: unknown setting "
                                  f"(known: {', '.join(options)})")
            values[key] = _convert(f"{name}.{key}", getattr(default, key), value, base)
        sections[name] = type(default)(**values)
    cfg = Config(**sections)
    _check(cfg)
    return cfg


def load(path: str | Path | None) -> Config:
    """The configuration in `path` over the defaults (None: the defaults alone)."""
    if path is None:
        cfg = Config()
        _check(cfg)
        return cfg
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return from_dict(data, path.parent.resolve())
