"""`comptoir keys export/import` (issue 17): a counter's keys carried to another in a bundle
sealed by a passphrase; the bundle 0600, never overwritten; a wrong passphrase or a damaged
bundle refused with a clear error and nothing written; import never replaces a different key
already here unless told; the keys and the passphrase never printed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comptoir.cli import main
from comptoir.storage import load_or_create_key
from comptoir.storage.key_bundle import BundleError, open_bundle, seal_bundle

PASSPHRASE = "correct horse battery staple"
NAMES = ("billing.key", "transactions.key", "rights.key", "pepper")


def counter(tmp: Path, name: str, *, keys: bool) -> tuple[Path, dict[str, Path]]:
    """A counter's comptoir.toml and where its keys go; with `keys`, made as a first start
    makes them."""
    data, keys_dir = tmp / name / "data", tmp / name / "keys"
    cfg = tmp / name / "comptoir.toml"
    cfg.parent.mkdir()
    cfg.write_text(f'[paths]\ndata_dir = "{data}"\nkeys_dir = "{keys_dir}"\n')
    paths = {"billing.key": keys_dir / "billing.key",
             "transactions.key": keys_dir / "transactions.key",
             "rights.key": keys_dir / "rights.key", "pepper": data / "tokens" / "pepper"}
    if keys:
        for p in paths.values():
            load_or_create_key(p)
    return cfg, paths


def secret_file(tmp: Path, text: str, name: str = "pass") -> Path:
    p = tmp / name
    p.write_text(text + "\n")
    p.chmod(0o600)
    return p


def keys(cfg: Path, verb: str, bundle: Path, passfile: Path, *extra: str) -> int:
    flag = "--out" if verb == "export" else "--in"
    return main(["keys", verb, "--config", str(cfg), flag, str(bundle),
                 "--passphrase-file", str(passfile), *extra])


def test_export_then_import_gives_the_second_counter_the_same_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, ones = counter(tmp_path, "one", keys=True)
    two, twos = counter(tmp_path, "two", keys=False)
    passfile = secret_file(tmp_path, PASSPHRASE)
    bundle = tmp_path / "keys.bundle"
    assert keys(one, "export", bundle, passfile) == 0
    assert bundle.stat().st_mode & 0o777 == 0o600
    raw = bundle.read_bytes()
    for p in ones.values():
        assert p.read_bytes() not in raw  # sealed, not carried in clear
    assert keys(one, "export", bundle, passfile) == 1  # never overwritten
    assert bundle.read_bytes() == raw
    assert keys(two, "import", bundle, passfile) == 0
    for name in NAMES:
        assert twos[name].read_bytes() == ones[name].read_bytes()
        assert twos[name].stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(twos["pepper"], create=False)  # the daemon's own checks pass
    assert keys(two, "import", bundle, passfile) == 0  # again: the same keys, nothing to do
    out = capsys.readouterr()
    assert PASSPHRASE not in out.out + out.err
    for p in ones.values():
        assert p.read_bytes().hex() not in out.out + out.err


def test_a_wrong_passphrase_or_a_damaged_bundle_is_refused_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, _ = counter(tmp_path, "one", keys=True)
    two, twos = counter(tmp_path, "two", keys=False)
    bundle = tmp_path / "keys.bundle"
    assert keys(one, "export", bundle, secret_file(tmp_path, PASSPHRASE)) == 0
    wrong = secret_file(tmp_path, PASSPHRASE + "!", "wrong")
    assert keys(two, "import", bundle, wrong) == 1
    assert "wrong passphrase" in capsys.readouterr().err
    blob = bundle.read_bytes()
    for i in (9, 20, len(blob) // 2, len(blob) - 1):  # a parameter, the salt, the sealed part
        flipped = blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1:]
        with pytest.raises(BundleError):
            open_bundle(flipped, PASSPHRASE)
    with pytest.raises(BundleError, match="not a Comptoir key bundle"):
        open_bundle(b"nonsense" * 10, PASSPHRASE)
    assert not any(p.exists() for p in twos.values())
    with pytest.raises(BundleError, match="at least 12"):
        seal_bundle({"pepper": os.urandom(32)}, "short")
    readable = secret_file(tmp_path, PASSPHRASE, "readable")
    readable.chmod(0o644)
    assert keys(two, "import", bundle, readable) == 1
    assert "readable by others" in capsys.readouterr().err


def test_import_keeps_different_keys_already_here_unless_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one, ones = counter(tmp_path, "one", keys=True)
    two, twos = counter(tmp_path, "two", keys=False)
    own = load_or_create_key(twos["billing.key"])  # counter 2 started once on its own
    passfile = secret_file(tmp_path, PASSPHRASE)
    bundle = tmp_path / "keys.bundle"
    assert keys(one, "export", bundle, passfile) == 0
    assert keys(two, "import", bundle, passfile) == 1
    assert "billing.key already here and different" in capsys.readouterr().err
    assert twos["billing.key"].read_bytes() == own  # kept
    assert not twos["rights.key"].exists()  # and nothing else written
    assert keys(two, "import", bundle, passfile, "--replace") == 0
    for name in NAMES:
        assert twos[name].read_bytes() == ones[name].read_bytes()
        assert twos[name].stat().st_mode & 0o777 == 0o600
