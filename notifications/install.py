"""What the notifications layer adds to an engine runtime: the delivery job."""

from __future__ import annotations

from collections.abc import Mapping

from engine.runtime import Runtime

from .delivery import Contacts, Deliverer, DeliveryPolicy
from .providers.base import Provider
from .queueing import DELIVER


def install(rt: Runtime, providers: Mapping[str, Provider], policy: DeliveryPolicy | None = None, *,
            contacts: Contacts | None = None) -> Deliverer:
    """`contacts` (the domain's) lets a retried notice that had nobody to reach find the person again."""
    deliverer = Deliverer(providers, policy, contacts)
    rt.add_job(DELIVER, deliverer)
    return deliverer
