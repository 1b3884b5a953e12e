"""boards/manifest.py (freezing the firmware into an image) names every module that
`comptoir flash` deploys, and nothing else: a firmware file added without it would be
missing from an integrator's frozen image."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manifest_modules() -> tuple[list[str], list[str]]:
    modules: list[str] = []
    includes: list[str] = []

    def module(path: str, base_path: str = ".", opt: int | None = None) -> None:
        assert (ROOT / "boards" / base_path / path).is_file(), path
        modules.append(path)

    env = {"module": module, "include": includes.append}
    exec(compile((ROOT / "boards" / "manifest.py").read_text(), "manifest.py", "exec"), env)
    return modules, includes


def test_manifest_freezes_every_deployed_module() -> None:
    fw = ROOT / "firmware"
    deployed = {p.relative_to(fw).as_posix() for p in fw.rglob("*.py")
                if "__pycache__" not in p.parts} - {"main.py"}  # main.py stays a file
    modules, includes = _manifest_modules()
    assert len(modules) == len(set(modules)), "a module named twice"
    assert set(modules) == deployed, (sorted(deployed - set(modules)),
                                      sorted(set(modules) - deployed))
    assert includes == ["$(PORT_DIR)/boards/manifest.py"]  # the port's own modules too
