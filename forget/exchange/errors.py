"""Errors raised when exporting a model::

ForgetError
└── NotExportableError (ValueError)   the model cannot be exported in this format, or
                                      its export would carry what it must not (kNN's rows)
"""

from __future__ import annotations

from forget.errors import ForgetError


class NotExportableError(ForgetError, ValueError):
    """This model cannot be exported: the message says which model and why."""
