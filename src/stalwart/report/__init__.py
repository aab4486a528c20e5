"""Reports: mean ± std over seeds, result tables (terminal and Markdown), plots."""

from stalwart.report.group_table import group_result_table, group_table
from stalwart.report.stats import mean_std, percent, percent_cell
from stalwart.report.tables import ResultTable

__all__ = [
    "ResultTable",
    "group_result_table",
    "group_table",
    "mean_std",
    "percent",
    "percent_cell",
]
