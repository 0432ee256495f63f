"""PNG charts of a transparency report (matplotlib, the optional ``report`` extra).

Without matplotlib, :func:`write_charts` writes nothing and says so through its empty result;
the Markdown and JSON carry every number either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def charts_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_charts(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per non-empty breakdown; [] when matplotlib is not installed."""
    if not charts_available():
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    period = report["period"]["name"]
    size = report["checkpoint"]["size"]
    panels = [
        ("signals-by-type.png", "Signals shared by type", report["signals"]["by_type"], "signals"),
        (
            "signals-by-label.png",
            "Signals shared by label",
            report["signals"]["by_label"],
            "signals",
        ),
        (
            "dispute-outcomes.png",
            "Dispute outcomes",
            report["disputes"]["outcomes"],
            "disputes",
        ),
        (
            "incident-signals.png",
            "Signals per incident",
            {i["incident_id"]: i["signals"] for i in report["incidents"]},
            "signals",
        ),
    ]
    written = []
    for name, title, counts, unit in panels:
        if not counts:
            continue
        labels = list(counts)
        values = [counts[x] for x in labels]
        height = max(2.5, 0.45 * len(labels) + 1.2)
        fig, ax = plt.subplots(figsize=(8, height), dpi=100)
        bars = ax.barh(labels, values, color="#3b6ea5")
        ax.invert_yaxis()
        ax.bar_label(bars, padding=3)
        ax.set_xlabel(unit)
        ax.set_title(f"{title}, {period} (log size {size})")
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlim(0, max(values) * 1.15 + 1)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written
