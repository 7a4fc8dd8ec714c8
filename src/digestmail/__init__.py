"""digestmail: self-hosted delivery of a bi-weekly email digest."""

from __future__ import annotations

__version__ = "0.1.0"
