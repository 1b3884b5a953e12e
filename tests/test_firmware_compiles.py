"""Every firmware file compiles with mpy-cross, as the flash tool will deploy it."""

from __future__ import annotations

from pathlib import Path

import pytest

from comptoir_tools.firmware.build import FIRMWARE, SOURCE_ONLY, CompileError, compile_tree

MPY_MAGIC = ord("M")


def test_every_firmware_file_compiles(tmp_path: Path) -> None:
    written = compile_tree(FIRMWARE, tmp_path, force=True)
    sources = [p.relative_to(FIRMWARE) for p in FIRMWARE.rglob("*.py")
               if "__pycache__" not in p.parts]
    assert len(written) == len(sources) > 5
    for rel in sources:
        if rel.as_posix() in SOURCE_ONLY:
            assert (tmp_path / rel).read_bytes() == (FIRMWARE / rel).read_bytes()
            continue
        mpy = (tmp_path / rel).with_suffix(".mpy").read_bytes()
        # .mpy header: 'M', format version 6, then flags.
        assert mpy[0] == MPY_MAGIC and mpy[1] == 6, rel


def test_a_syntax_error_is_reported_by_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.py").write_text("x = 1\n")
    (src / "bad.py").write_text("def f(:\n")
    with pytest.raises(CompileError, match=r"bad\.py"):
        compile_tree(src, tmp_path / "out", force=True)


def test_up_to_date_outputs_are_not_rebuilt(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text("x = 1\n")
    assert len(compile_tree(src, tmp_path / "out")) == 1
    assert compile_tree(src, tmp_path / "out") == []
