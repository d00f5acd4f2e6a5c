"""PNG figures a person would rather look at than JSON (rasters for now)."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["raster_png", "energy_png", "retention_png"]


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
    return _save(fig, path, title, dpi=120)


def _save(fig, path, title: str | None, dpi: int) -> Path:
    """The figure as a PNG at exactly ``path`` (no suffix added), written atomically."""
    import io

    import matplotlib.pyplot as plt

    from .model.checkpoint import atomic_write
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return path


def energy_png(series: dict, path: str | Path, *, x: str = "density", title: str | None = None,
               highlight: str | None = None) -> Path:
    """Energy per pass against ``x`` (``density`` or ``bits``), a line per organisation: ``series``
    maps a row title (e.g. the schedule) to :func:`neuromosaic.model.energy.energy_sweep` rows, drawn
    as one row of forward / backward / update panels each (log scale, uJ)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    passes = ("forward", "backward", "update")
    fig, axes = plt.subplots(len(series), 3, figsize=(13, 3.4 * len(series) + 0.5), squeeze=False)
    for axrow, (name, rows) in zip(axes, series.items()):
        labels = list(dict.fromkeys(r["label"] for r in rows))
        for ax, p in zip(axrow, passes):
            for label in labels:
                pts = sorted((r[x], r["energy_pj"][p] * 1e-6) for r in rows if r["label"] == label)
                bold = highlight is not None and label.lower() == highlight.lower()
                ax.plot(*zip(*pts), marker="o", ms=3, lw=2.6 if bold else 1.3, label=label)
            ax.set_yscale("log")
            ax.set_xlabel("weight density" if x == "density" else "weight bits")
            ax.set_ylabel("energy (uJ)")
            ax.set_title(f"{p} ({name})", fontsize=10)
            ax.grid(alpha=0.3, which="both")
        axrow[0].legend(fontsize=8)
    return _save(fig, path, title, dpi=110)


def retention_png(result: dict, path: str | Path, *, title: str | None = None) -> Path:
    """Seed 001's trade-off: retention error against training energy per organisation (a point per
    density), and the learning curves per density."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, curves) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label in dict.fromkeys(r["label"] for r in result["rows"]):
        rows = sorted((r for r in result["rows"] if r["label"] == label), key=lambda r: r["density"])
        ax.plot([r["energy_uj"] for r in rows], [r["retention_error"] for r in rows], marker="o", label=label)
        for r in rows:
            ax.annotate(f"{r['density']:g}", (r["energy_uj"], r["retention_error"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xscale("log")
    ax.set_xlabel("training energy per iteration (uJ)")
    ax.set_ylabel("retention error (van Rossum, relative)")
    ax.set_title("retention vs energy (labels: density)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    for density, history in result["histories"].items():
        curves.plot(history, label=f"density {density}")
    curves.set_yscale("log")
    curves.set_xlabel("iteration")
    curves.set_ylabel("retention error")
    curves.set_title("training", fontsize=10)
    curves.grid(alpha=0.3, which="both")
    curves.legend(fontsize=8)
    return _save(fig, path, title, dpi=110)
