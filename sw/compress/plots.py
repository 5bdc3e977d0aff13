"""Figures of a compression run (matplotlib, written as PNG without a display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def weight_distributions(path: Path, before_pruning: dict[str, np.ndarray], shared: dict) -> None:
    """Per layer: the weights as pruning starts (dense, or a low-rank factor), then the surviving
    shared weights with the codebook marked."""
    names = list(shared)
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 5.4), squeeze=False)
    for l, name in enumerate(names):
        before = before_pruning[name].ravel()
        after = shared[name].weights().ravel()
        after = after[after != 0]
        limit = float(max(np.abs(before).max(), np.abs(shared[name].codebook).max()))
        bins = np.linspace(-limit, limit, 121)
        axes[0, l].hist(before, bins=bins, color="tab:blue")
        axes[0, l].set_title(f"{name}: before pruning")
        axes[1, l].hist(after, bins=bins, color="tab:green")
        for value in shared[name].codebook[1:]:
            if value != 0:
                axes[1, l].axvline(value, color="tab:red", linewidth=0.6, alpha=0.7)
        axes[1, l].set_title(f"{name}: pruned + shared ({len(after):,} left)")
        axes[1, l].set_xlabel("weight")
    axes[0, 0].set_ylabel("count")
    axes[1, 0].set_ylabel("count (red: shared values)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def kept_fraction(path: Path, storage) -> None:
    names = [l.name for l in storage.layers]
    kept = [100.0 * l.kept / l.weights for l in storage.layers]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 3.4))
    bars = ax.bar(names, kept, color="tab:blue")
    ax.bar_label(bars, fmt="%.1f%%")
    ax.set_ylabel("weights kept (%)")
    ax.set_title(f"kept {100 * storage.kept_fraction:.1f}% overall")
    ax.set_ylim(0, max(kept) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sensitivity_curves(path: Path, fractions, curves: dict[str, list[float]]) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = 100.0 * np.asarray(fractions)
    for name, curve in curves.items():
        ax.plot(x, 100.0 * np.asarray(curve), marker="o", label=name)
    ax.set_xlabel("weights pruned in that layer alone (%)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("pruning sensitivity, no retraining")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
