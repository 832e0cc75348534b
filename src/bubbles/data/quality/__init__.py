"""Data quality: contracts, checks in one DuckDB pass, quarantine with reasons, masking, dedup.

* :mod:`.contract` — :class:`Contract` and its rules (Python); :mod:`.yamlfile` — the same in YAML;
* :mod:`.compile` — a contract as one DuckDB query;
* :mod:`.validate` — :func:`validate` (valid rows, quarantined rows, one result per rule) and
  :func:`check` (the same as a task);
* :mod:`.quarantine` — the sink shared with the readers' bad lines (Parquet dataset or table);
* :mod:`.masking` — masks as DuckDB expressions (:func:`mask`);
* :mod:`.graphcheck` — contracts checked against a workflow's graph (``bubbles validate``);
* :mod:`.results` — results for ``bubbles show`` and the HTML report.

Nothing heavy is imported here: DuckDB and Arrow load when a check runs.
"""

from __future__ import annotations

from ..._events import QualityResult, QuarantineWrite
from ...observe.quality_results import report_quality, show_quality
from .contract import Check, Column, Contract, Dedup, Freshness, RowCount, Rule, Threshold, Unique
from .errors import ContractError, QualityError
from .graphcheck import check_graph, produces
from .masking import mask
from .quarantine import Sink, read_quarantine
from .replay import replay
from .validate import Validation, check, validate
from .yamlfile import contract_from_yaml, load_contract

__all__ = [
    "Check",
    "Column",
    "Contract",
    "ContractError",
    "Dedup",
    "Freshness",
    "QualityError",
    "QualityResult",
    "QuarantineWrite",
    "RowCount",
    "Rule",
    "Sink",
    "Threshold",
    "Unique",
    "Validation",
    "check",
    "check_graph",
    "contract_from_yaml",
    "load_contract",
    "mask",
    "produces",
    "read_quarantine",
    "replay",
    "report_quality",
    "show_quality",
    "validate",
]
