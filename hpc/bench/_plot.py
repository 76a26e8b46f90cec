"""Bar charts of ``hpc bench`` results (matplotlib, imported only here)."""

from __future__ import annotations

from typing import Any

__all__ = ["save"]


def save(all_results: dict[str, Any], path: str) -> None:
    """Draw one panel of seconds per contestant for every workload of every suite, and save it to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    panels = [
        (f"{suite}: {name}", workload["rows"])
        for suite, results in all_results.items()
        for name, workload in results.get("workloads", {}).items()
        if workload.get("rows")
    ]
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 + 0.35 * sum(len(r) for _, r in panels)), squeeze=False)
    for ax, (title, rows) in zip(axes[:, 0], panels):
        labels = list(rows)
        ax.barh(labels, [rows[label]["seconds"] for label in labels])
        ax.invert_yaxis()
        ax.set_title(title)
        ax.set_xlabel("seconds (median)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
