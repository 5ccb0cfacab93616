"""The API test fixtures (an app over the parametrized database, users of every role) for the
conformance suite."""

from tests.api.conftest import _success_statuses_are_declared, app, client, users  # noqa: F401
