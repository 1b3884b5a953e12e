"""The counter screen started beside the API, from the configuration (`comptoir run`, the twin)."""

from __future__ import annotations

import logging
from typing import Any

from comptoir.app import App
from comptoir.config import Config
from comptoir.rights.breaker import BreakerState

from .server import Pharmacy, ScreenServer
from .sessions import Sessions, SignInLinks

log = logging.getLogger("comptoir.screen")


def links_dir(cfg: Config) -> Any:
    return cfg.paths.data_dir / "screen-links"


def start_screen(cfg: Config, services: App, daemon: Any,
                 trust: Any = None) -> ScreenServer | None:
    """The screen on [screen] port, on api.host; None when disabled or when its port is taken
    (logged: the daemon serves the API and the boards without it)."""
    s = cfg.screen
    if not s.enabled:
        return None
    desk = services.rights
    client = None if desk is None else desk.cache.client

    def rights_reachable() -> bool | None:
        return None if client is None else client.breaker.state == BreakerState.CLOSED

    if trust is None and services.api is not None:
        trust = services.api.trust
    try:
        screen = ScreenServer(
            services.store, services.feed,
            links=SignInLinks(links_dir(cfg), ttl=s.link_ttl_s),
            sessions=Sessions(ttl=s.session_ttl_s),
            pharmacy=Pharmacy(s.finess, s.pharmacist_rpps, cfg.cache.timezone,
                              cfg.paths.data_dir),
            host=cfg.api.host, port=s.port, boards=lambda: dict(daemon.status),
            trust=trust, rights_reachable=rights_reachable)
    except OSError as e:
        log.error("counter screen not started", extra={"port": s.port, "error": str(e)})
        return None
    return screen.start()
