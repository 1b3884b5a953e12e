"""`comptoir screen`: print a one-time sign-in link to the counter screen of the daemon that
runs with this configuration. Run it as the daemon's user (it writes in the data directory);
the link is good once, for [screen] link_ttl_s seconds, and hands the page no API token."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from comptoir.config import ConfigError, load

from .server import link_for
from .service import links_dir
from .sessions import SignInLinks


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="comptoir screen", description=__doc__)
    ap.add_argument("--config", type=Path, default=None, help="comptoir.toml of the daemon")
    args = ap.parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"comptoir: config: {e}", file=sys.stderr)
        return 2
    if not cfg.screen.enabled:
        print("comptoir: the counter screen is off ([screen] enabled = false)", file=sys.stderr)
        return 2
    try:
        secret = SignInLinks(links_dir(cfg), ttl=cfg.screen.link_ttl_s).issue()
    except OSError as e:
        print(f"comptoir: cannot write the sign-in link in {links_dir(cfg)}: {e.strerror or e}"
              " (run as the daemon's user)", file=sys.stderr)
        return 2
    host = f"[{cfg.api.host}]" if ":" in cfg.api.host else cfg.api.host
    print(f"Écran du comptoir — ouvrez ce lien (valable une fois, "
          f"{cfg.screen.link_ttl_s // 60 or 1} min) :")
    print(link_for(f"http://{host}:{cfg.screen.port}", secret))
    return 0
