"""``Allow`` on ``OPTIONS`` answers lists every method of the resource (RFC 9110).

Litestar answers ``OPTIONS`` with the methods of one of its routes; when handlers of one path come from
different controllers or routers (``/v1/conversations``: the list and the creation), that is only some of
them. A 405's ``Allow`` is right already (``backend.errors``); this completes the ``OPTIONS`` one.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

_METHODS_KEY = "surge_methods_by_path"
# A route declares `{share_id:uuid}`; the path template of a request says `{share_id}`.
_PARAMETER_TYPE = re.compile(r"\{(\w+):[^}]*\}")


def template_of(path: str) -> str:
    return _PARAMETER_TYPE.sub(r"{\1}", path)


def methods_by_path(app: Litestar) -> dict[str, frozenset[str]]:
    """Every path template of the app and all the methods its handlers answer, OPTIONS included."""
    methods: dict[str, set[str]] = defaultdict(set)
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            methods[template_of(route.path)].update(route.methods)
    return {path: frozenset(found) for path, found in methods.items()}


async def complete_allow(message: Message, scope: Scope) -> None:
    """``before_send``: an OPTIONS answer's ``Allow`` lists the methods of every handler of its path."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    app: Any = scope["litestar_app"]
    known = app.state.get(_METHODS_KEY)
    if known is None:
        known = app.state[_METHODS_KEY] = methods_by_path(app)
    methods = known.get(template_of(scope.get("path_template", "")))
    if methods:
        MutableScopeHeaders.from_message(message)["Allow"] = ", ".join(sorted(methods))
