"""The audit suite reuses the API suite's app factory."""

from tests.api.conftest import make_client  # noqa: F401
