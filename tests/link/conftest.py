# CPython-only link tests (hypothesis) reuse the shared firmware test helpers.
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for p in (_ROOT / "firmware", _ROOT / "tests" / "firmware"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
