"""comptoir.toml loading: defaults, the example file, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from comptoir import config
from comptoir.config import Config, ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "comptoir.toml"


def load_text(tmp_path: Path, text: str) -> Config:
    p = tmp_path / "comptoir.toml"
    p.write_text(text)
    return config.load(p)


def test_example_file_is_the_defaults() -> None:
    assert config.load(EXAMPLE) == Config()


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, '[paths]\ndata_dir = "data"\n[api]\nport = 0\nhost = "::1"\n')
    assert cfg.paths.data_dir == tmp_path.resolve() / "data"
    assert cfg.transactions_db == tmp_path.resolve() / "data" / "transactions.db"
    assert cfg.api.port == 0 and cfg.api.host == "::1"
    assert cfg.boards.baud == 115200


def test_usb_ids_parsed(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, '[boards]\nusb_ids = ["10C4:EA60"]\n')
    assert cfg.boards.usb_ids == ((0x10C4, 0xEA60),)


@pytest.mark.parametrize(("text", "key"), [
    ('[api]\nhost = "0.0.0.0"\n', "api.host"),
    ('[api]\nhost = "192.168.1.10"\n', "api.host"),
    ('[api]\nhost = "localhost"\n', "api.host"),
    ('[api]\nport = 70000\n', "api.port"),
    ('[api]\nport = "8765"\n', "api.port"),
    ('[api]\nprot = 8765\n', "api.prot"),
    ('[apii]\nport = 8765\n', "apii"),
    ('api = 3\n', "api"),
    ('[boards]\nbaud = true\n', "boards.baud"),
    ('[boards]\nusb_ids = ["10c4"]\n', "boards.usb_ids"),
    ('[boards]\ndiscover = "yes"\n', "boards.discover"),
    ('[boards]\ndiscover = false\n', "boards.ports"),
    ('[log]\nlevel = "loud"\n', "log.level"),
    ('[cache]\nfresh_for_s = 900000\n', "cache.fresh_for_s"),
    ('[cache]\ntimezone = "Mars/Olympus"\n', "cache.timezone"),
    ('[paths]\ndata_dir = ""\n', "paths.data_dir"),
    ('[billing]\nlot_size = 0\n', "billing.lot_size"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, text)
    assert str(e.value).startswith(key + ":") or str(e.value).startswith(key + " ")


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_text(tmp_path, "[api\n")
