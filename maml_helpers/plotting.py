"""Pictures: characters from several alphabets, a task, a learning curve."""
from __future__ import annotations

import numpy as np

from .files import atomic_write


def plot_alphabets(data, alphabets: int = 6, per_alphabet: int = 8, seed: int = 0):
    """A grid: one row per alphabet (drawn with ``seed``), its first characters' first drawing."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    names = rng.choice(np.unique(data.alphabets), size=alphabets, replace=False)
    fig, axes = plt.subplots(alphabets, per_alphabet, figsize=(per_alphabet * 0.9, alphabets * 1.0))
    for row, name in zip(axes, names):
        chars = np.flatnonzero(data.alphabets == name)[:per_alphabet]
        for ax, c in zip(row, chars):
            ax.imshow(data.images[c, 0], cmap="gray_r")
        for ax in row:
            ax.set_xticks([]); ax.set_yticks([])
        row[0].set_ylabel(name.replace("_", " ")[:14], rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def plot_task(tasks, b: int = 0, predictions=None):
    """Support set (top row per label) and query set of task ``b``; wrong predictions in red."""
    import matplotlib.pyplot as plt

    support_x, support_y, query_x, query_y = tasks.task(b)
    ways = int(support_y.max()) + 1
    shots, queries = len(support_y) // ways, len(query_y) // ways
    cols = shots + min(queries, 5)
    fig, axes = plt.subplots(ways, cols, figsize=(cols * 1.0, ways * 1.05), squeeze=False)
    for label in range(ways):
        s = (support_y == label).nonzero().flatten().tolist()
        q = (query_y == label).nonzero().flatten().tolist()[: cols - shots]
        for j, i in enumerate(s):
            axes[label, j].imshow(support_x[i, 0], cmap="gray_r")
            axes[label, j].set_title(f"support {label}", fontsize=7)
        for j, i in enumerate(q):
            ax = axes[label, shots + j]
            ax.imshow(query_x[i, 0], cmap="gray_r")
            if predictions is None:
                ax.set_title(f"query {label}", fontsize=7)
            else:
                ok = int(predictions[i]) == label
                ax.set_title(f"pred {int(predictions[i])}", fontsize=7, color="green" if ok else "red")
                for spine in ax.spines.values():
                    spine.set_edgecolor("green" if ok else "red"); spine.set_linewidth(2)
        for ax in axes[label]:
            ax.set_xticks([]); ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_learning_curve(rows: list[dict], title: str = "", path=None):
    """Training and validation accuracy against iteration; saved to ``path`` if given."""
    import matplotlib
    import matplotlib.pyplot as plt

    if path is not None:
        matplotlib.use("Agg", force=False)
    fig, ax = plt.subplots(figsize=(7, 4))
    train = [r for r in rows if r.get("train_acc") is not None]
    val = [r for r in rows if r.get("val_acc") is not None]
    if train:
        ax.plot([r["iteration"] for r in train], [100 * r["train_acc"] for r in train],
                alpha=0.6, label="meta-train query accuracy")
    if val:
        ax.errorbar([r["iteration"] for r in val], [100 * r["val_acc"] for r in val],
                    yerr=[100 * r["val_ci95"] for r in val], marker="o", capsize=3,
                    label="validation accuracy (95% CI)")
    ax.set_xlabel("meta-iteration"); ax.set_ylabel("accuracy (%)")
    ax.set_title(title); ax.grid(alpha=0.3); ax.legend(loc="lower right")
    fig.tight_layout()
    if path is not None:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
        plt.close(fig)
    return fig
