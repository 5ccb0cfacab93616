"""Notification providers: one module per channel, all behind `base.Provider`."""

from .base import (
    Channel,
    NotFollower,
    OutgoingMessage,
    PermanentError,
    Provider,
    ProviderError,
    RetriableError,
    SendResult,
)

__all__ = [
    "Channel",
    "NotFollower",
    "OutgoingMessage",
    "PermanentError",
    "Provider",
    "ProviderError",
    "RetriableError",
    "SendResult",
]
