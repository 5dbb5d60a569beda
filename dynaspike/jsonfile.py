"""Figures and reports as JSON files (the benches, the report, the board run)."""

import json
from pathlib import Path


def write_json(path, obj) -> None:
    """Write ``obj`` to ``path`` as indented JSON, making the parent folders first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")
