"""The API's resources, one module each, every one in a sync and an async flavour."""

from surge.resources.admin import Admin, AsyncAdmin
from surge.resources.api_keys import ApiKeys, AsyncApiKeys
from surge.resources.auth import AsyncAuth, Auth
from surge.resources.conversations import AsyncConversations, AsyncShares, Conversations, Shares
from surge.resources.devices import AsyncDevices, Devices
from surge.resources.health import AsyncHealthChecks, HealthChecks
from surge.resources.me import AsyncMe, Me
from surge.resources.messages import AsyncMessages, Messages
from surge.resources.models import AsyncModels, Models

__all__ = [
    "Admin",
    "ApiKeys",
    "AsyncAdmin",
    "AsyncApiKeys",
    "AsyncAuth",
    "AsyncConversations",
    "AsyncDevices",
    "AsyncHealthChecks",
    "AsyncMe",
    "AsyncMessages",
    "AsyncModels",
    "AsyncShares",
    "Auth",
    "Conversations",
    "Devices",
    "HealthChecks",
    "Me",
    "Messages",
    "Models",
    "Shares",
]
