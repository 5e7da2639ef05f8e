"""The admission domain's Litestar providers: the controller, the client's IP, the turn and creation limits
and the cap on each user's open sockets."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide

from backend.admission.client_ip import ClientIps
from backend.admission.controller import AdmissionController
from backend.admission.creation import CreationLimits
from backend.admission.ratelimit import TurnRateLimit
from backend.admission.slots import UserSlots
from backend.deps import singleton


def provide_client_ip(request: Request[Any, Any, Any], client_ips: NamedDependency[ClientIps]) -> str:
    return client_ips.of(request)


def admission_providers(
    *,
    admission: AdmissionController,
    client_ips: ClientIps,
    turn_rate_limit: TurnRateLimit,
    creation_limits: CreationLimits,
    socket_slots: UserSlots,
) -> dict[str, Provide]:
    return {
        "admission": singleton(admission),
        "client_ips": singleton(client_ips),
        "client_ip": Provide(provide_client_ip, sync_to_thread=False),
        "turn_rate_limit": singleton(turn_rate_limit),
        "creation_limits": singleton(creation_limits),
        "socket_slots": singleton(socket_slots),
    }


Admission = NamedDependency[AdmissionController]
ClientIp = NamedDependency[str]
TurnRate = NamedDependency[TurnRateLimit]
Creations = NamedDependency[CreationLimits]
SocketSlots = NamedDependency[UserSlots]
