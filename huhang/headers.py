"""Request headers shared by the services' APIs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", min_length=1, max_length=200,
        description="Send the same key when retrying: the first answer is returned and nothing is recorded twice.",
    ),
]
