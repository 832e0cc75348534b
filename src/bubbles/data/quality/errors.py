"""The errors of data quality: a contract that is wrong, and data that broke a ``fail`` rule.

```
ConfigError
└── ContractError      the contract itself is wrong: file, line, key, what to write instead
DataError
└── QualityError       rows broke a rule whose action is ``fail``: rule, count, masked examples, fix
```
Both pickle with their fields and are never retried (``transient=False``): running again
over the same data or the same contract gives the same answer.
"""

from __future__ import annotations

from ..._errors import ConfigError, DataError

__all__ = ["ContractError", "QualityError"]


class ContractError(ConfigError):
    """A data contract is malformed: an unknown key, a bad type, a regex that does not compile.

    Fields, when known: ``contract``, ``source`` (the contract file), ``line``, ``key``.
    """


class QualityError(DataError):
    """Rows broke a rule whose action is ``fail`` (or more rows than a threshold allows).

    Fields: ``contract``, ``rule``, ``failed`` (rows), ``checked`` (rows), ``examples`` (masked),
    ``task``, ``source``.
    """
