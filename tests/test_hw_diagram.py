"""hw/diagram.py draws the block diagram from the design's widths (docs/core.svg is its output)."""

from dynaspike import cycles


def test_diagram_labels_follow_the_lane_count(tmp_path):
    from hw import diagram

    out = tmp_path / "core.svg"
    diagram.draw(16, out)
    text = out.read_text()
    assert f"P = 16: {cycles.ACC_ROWS * 16} accumulators" in text   # svg.fonttype none: the text stays text
    assert "16 lanes, membranes in BRAM" in text and "event generator" in text


def test_the_shipped_diagram_is_the_scripts_output(tmp_path):
    from pathlib import Path

    from hw import diagram

    out = tmp_path / "core.svg"
    diagram.draw(cycles.DEFAULT_LANES, out)
    shipped = Path(diagram.__file__).resolve().parent.parent / "docs" / "core.svg"
    assert out.read_text() == shipped.read_text(), "docs/core.svg is stale: run python -m hw.diagram"
