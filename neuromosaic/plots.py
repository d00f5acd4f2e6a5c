"""PNG figures a person would rather look at than JSON (rasters for now)."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["raster_png"]


def raster_png(panels, path: str | Path, *, title: str | None = None) -> Path:
    """``panels``: (raster [T, C], panel title, y label) triples drawn one above the other, a dot
    per non-zero bin (darker for more events)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels) + 0.4), sharex=True, squeeze=False)
    for ax, (raster, panel_title, ylabel) in zip(axes[:, 0], panels):
        r = torch.as_tensor(raster)
        t, c = torch.nonzero(r, as_tuple=True)
        ax.scatter(t, c, s=3, c=r[t, c].float().clamp(max=3), cmap="Blues", vmin=-1.5, vmax=3, marker="s")
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title, fontsize=10)
        ax.set_ylim(-0.5, r.shape[1] - 0.5)
    axes[-1, 0].set_xlabel("timestep")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
