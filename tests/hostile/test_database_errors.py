"""Database failures are answered in Surge's envelope: an outage is a retryable 503, never a 409 or 500."""

from __future__ import annotations

import pytest
from advanced_alchemy.exceptions import DuplicateKeyError, RepositoryError
from advanced_alchemy.exceptions import IntegrityError as RepositoryIntegrityError
from sqlalchemy.exc import IntegrityError, OperationalError

from backend.app import create_app
from backend.errors import ApiError, Conflict, DatabaseUnavailable, database_error_of
from tests.conftest import error_of, make_settings, serve

# Nothing listens on port 1: the database is unreachable.
UNREACHABLE = "postgresql+asyncpg://surge@127.0.0.1:1/surge"


async def test_a_database_outage_at_sign_up_is_503_with_retry_after_not_email_taken(tmp_path):
    app = create_app(make_settings(UNREACHABLE, tmp_path))
    async with serve(app) as client:
        signup = await client.post(
            "/v1/auth/signup", json={"email": "new@example.com", "password": "correct horse"}
        )
        login = await client.post("/v1/auth/login", json={"email": "new@example.com", "password": "x" * 8})
    for response in (signup, login):
        assert response.status_code == 503, response.text
        error = error_of(response)
        assert error["code"] == "upstream_unavailable"
        assert int(response.headers["Retry-After"]) == error["retry_after_s"] >= 1


def wrapped(cause: Exception, wrapper: RepositoryError) -> RepositoryError:
    """A repository error raised ``from`` a SQLAlchemy one, as Advanced Alchemy's repositories do."""
    try:
        raise wrapper from cause
    except RepositoryError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        # Advanced Alchemy wraps every failed statement, a lost connection included, in its IntegrityError.
        (
            wrapped(OperationalError("SELECT", {}, ConnectionError()), RepositoryIntegrityError()),
            DatabaseUnavailable,
        ),
        (wrapped(IntegrityError("INSERT", {}, Exception()), DuplicateKeyError()), Conflict),
        (OperationalError("SELECT", {}, ConnectionRefusedError()), DatabaseUnavailable),
        # Not from the database driver (no traceback through it): not the database's outage.
        (ConnectionRefusedError(), ApiError),
        # SQLite says "no such table" with an OperationalError too: a bug, not an outage.
        (OperationalError("SELECT", {}, Exception("no such table: x")), ApiError),
    ],
)
def test_database_errors_map_to_surge_errors(exc, expected):
    assert type(database_error_of(exc)) is expected
