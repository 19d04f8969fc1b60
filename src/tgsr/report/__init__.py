"""Reports people read: the run report (``report.html``) and the single-example viewer.

``html.render_report`` / ``html.write_report`` turn a saved results dict into a
self-contained page; ``viewer.render_viewer`` / ``viewer.write_viewer`` show one clip with
its reasoning traces. Plots shared with the analyses live in ``report.plots``.
"""

from .html import load_results, render_report, write_report
from .viewer import render_viewer, write_viewer

__all__ = ["load_results", "render_report", "write_report", "render_viewer", "write_viewer"]
