"""One module per panel; each renders one snapshot model."""

from __future__ import annotations

from console.ui.panels.base import Panel
from console.ui.panels.containers import ContainersPanel
from console.ui.panels.cost import CostPanel
from console.ui.panels.database import DatabasePanel
from console.ui.panels.events import EventsPanel
from console.ui.panels.health import HealthPanel
from console.ui.panels.operations import OperationsPanel
from console.ui.panels.quotas import QuotasPanel
from console.ui.panels.stats import StatsPanel

__all__ = [
    "PANEL_CLASSES",
    "ContainersPanel",
    "CostPanel",
    "DatabasePanel",
    "EventsPanel",
    "HealthPanel",
    "OperationsPanel",
    "Panel",
    "QuotasPanel",
    "StatsPanel",
]

PANEL_CLASSES: tuple[type[Panel], ...] = (
    ContainersPanel,
    HealthPanel,
    StatsPanel,
    DatabasePanel,
    QuotasPanel,
    CostPanel,
    EventsPanel,
    OperationsPanel,
)
"""Every panel, in key order (1-8)."""
