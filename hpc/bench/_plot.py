"""Charts of ``hpc bench`` results (matplotlib, imported only here)."""

from __future__ import annotations

from typing import Any

__all__ = ["save"]


def save(all_results: dict[str, Any], path: str) -> bool:
    """Draw the results and save them to ``path``; return ``False`` (and write nothing) when there is nothing to draw.

    One panel of seconds per contestant for every workload of every suite (iter), and one of latency against
    message size for a suite with a list of ``sizes`` (mpi).
    """
    bars = [
        (f"{suite}: {name}", workload["rows"])
        for suite, results in all_results.items()
        for name, workload in results.get("workloads", {}).items()
        if workload.get("rows")
    ]
    lines = [
        (f"{suite}: latency by message size", results["sizes"])
        for suite, results in all_results.items()
        if isinstance(results.get("sizes"), list) and results["sizes"]
    ]
    if not bars and not lines:
        return False
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    height = 2.2 + 0.35 * sum(len(r) for _, r in bars) + 3.5 * len(lines)
    fig, axes = plt.subplots(len(bars) + len(lines), 1, figsize=(8, height), squeeze=False)
    for ax, (title, rows) in zip(axes[: len(bars), 0], bars):
        labels = list(rows)
        ax.barh(labels, [rows[label]["seconds"] for label in labels])
        ax.invert_yaxis()
        ax.set_title(title)
        ax.set_xlabel("seconds (median)")
    for ax, (title, sizes) in zip(axes[len(bars) :, 0], lines):
        for label in dict.fromkeys(label for size in sizes for label in size["rows"]):
            points = [(size["bytes"], size["rows"][label]["us"]) for size in sizes if label in size["rows"]]
            ax.plot([b for b, _ in points], [us for _, us in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("message bytes")
        ax.set_ylabel("microseconds (median)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
