"""The protection methods by name (the method registry; no torch, no Qt).

Command-line parsers and GUI controls read the method names from here, so this module must
stay free of torch and of every other heavy import (see :mod:`jndguard.core.defaults`): the
implementations are imported only when a method is built (:func:`jndguard.core.pipeline.build_method`).
"""

from __future__ import annotations

#: method key → label, in the order menus show them
METHODS: dict[str, str] = {
    "hvs-jnd": "HVS-JND (recommended)",
    "mnd": "MND",
    "jndmga": "JNDMGA",
    "bim": "BIM",
    "pgd": "PGD",
    "mifgsm": "MI-FGSM",
    "difgsm": "DI²-FGSM",
}
