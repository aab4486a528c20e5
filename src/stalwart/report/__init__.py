"""Reports: tables of per-group results for the terminal."""

from stalwart.report.table import group_table

__all__ = ["group_table"]
