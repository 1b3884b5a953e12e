"""`comptoir keys`: carry the keys a counter needs from one counter PC to another, sealed by a
passphrase (docs/operations.md §8).

    comptoir keys export [--config PATH] --out FILE [--passphrase-file FILE]
    comptoir keys import [--config PATH] --in FILE [--passphrase-file FILE] [--replace]

The bundle holds `billing.key`, `transactions.key`, `rights.key` (paths.keys_dir) and the
verifier's `pepper` (DATA_DIR/tokens/pepper): the same on every counter of a pharmacy that
shares one PostgreSQL server. It is written 0600 and never overwritten. Import writes each key
0600 and refuses, writing nothing, when a key already here differs (a counter that already
sealed data with its own key would lose it) unless `--replace`. The passphrase is read from a
0600 file or asked on the terminal; it is never printed nor logged, nor are the keys.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from comptoir import config
from comptoir.storage import KEY_BYTES, StorageError, check_private, load_or_create_key
from comptoir.storage.key_bundle import BundleError, open_bundle, seal_bundle


def key_files(cfg: config.Config) -> dict[str, Path]:
    """The name of each key in a bundle -> where this counter keeps it."""
    return {"billing.key": cfg.billing_key, "transactions.key": cfg.transactions_key,
            "rights.key": cfg.rights_key, "pepper": cfg.paths.data_dir / "tokens" / "pepper"}


def _passphrase(args: argparse.Namespace, *, twice: bool) -> str:
    if args.passphrase_file is not None:
        path = Path(args.passphrase_file)
        info = check_private(path, "passphrase file")
        return path.read_text(encoding="utf-8").splitlines()[0] if info.st_size else ""
    first = getpass.getpass("passphrase of the key bundle: ")
    if twice and getpass.getpass("the same passphrase again: ") != first:
        raise BundleError("the two passphrases differ")
    return first


def _write_private(path: Path, data: bytes, *, replace: bool) -> None:
    """`data` into `path`, mode 0600, whole or not at all (a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError: never overwrite
    finally:
        tmp.unlink(missing_ok=True)


def _export(cfg: config.Config, args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists():
        raise BundleError(f"{out} exists: give another name or remove it first")
    files = {name: load_or_create_key(path, create=False)
             for name, path in key_files(cfg).items() if path.exists()}
    if not files:
        raise BundleError("no key here to export: start the daemon once first (it creates "
                          f"them in {cfg.paths.keys_dir})")
    _write_private(out, seal_bundle(files, _passphrase(args, twice=True)), replace=False)
    missing = sorted(set(key_files(cfg)) - set(files))
    print(f"exported {', '.join(sorted(files))} to {out} (mode 0600)"
          + (f"; not here, not exported: {', '.join(missing)}" if missing else ""))
    return 0


def _import(cfg: config.Config, args: argparse.Namespace) -> int:
    files = open_bundle(Path(args.input).read_bytes(), _passphrase(args, twice=False))
    targets = key_files(cfg)
    unknown = sorted(set(files) - set(targets))
    if unknown or any(len(data) != KEY_BYTES for data in files.values()):
        raise BundleError(f"the bundle holds something else than keys ({', '.join(unknown)})")
    same: list[str] = []
    differ: list[str] = []
    for name in files:
        if targets[name].exists():
            here = load_or_create_key(targets[name], create=False)
            (same if here == files[name] else differ).append(name)
    if differ and not args.replace:
        print(f"comptoir keys: refused, nothing imported: {', '.join(sorted(differ))} "
              "already here and different (data sealed with them would no longer open); "
              "--replace if this counter's own keys are to go", file=sys.stderr)
        return 1
    written = sorted(n for n in files if n not in same)
    for name in written:
        _write_private(targets[name], files[name], replace=name in differ)
    print(f"imported {', '.join(written) or 'nothing new'}"
          + (f"; already the same: {', '.join(sorted(same))}" if same else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="comptoir keys",
                                 description="carry a counter's keys, passphrase-sealed")
    sub = ap.add_subparsers(dest="verb", required=True)
    ex = sub.add_parser("export", help="write this counter's keys into a sealed bundle")
    ex.add_argument("--out", required=True, type=Path)
    im = sub.add_parser("import", help="install the keys of a bundle on this counter")
    im.add_argument("--in", dest="input", required=True, type=Path)
    im.add_argument("--replace", action="store_true",
                    help="replace keys already here that differ (their sealed data is lost)")
    for p in (ex, im):
        p.add_argument("--config", type=Path, default=None, help="comptoir.toml")
        p.add_argument("--passphrase-file", type=Path, default=None,
                       help="a 0600 file whose first line is the passphrase (default: asked)")
    args = ap.parse_args(argv)
    try:
        cfg = config.load(args.config)
    except (config.ConfigError, OSError) as e:
        print(f"comptoir keys: {e}", file=sys.stderr)
        return 2
    try:
        return _export(cfg, args) if args.verb == "export" else _import(cfg, args)
    except (StorageError, OSError) as e:
        print(f"comptoir keys: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
