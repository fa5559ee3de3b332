"""The request bodies: the registry operations' own documents (:mod:`storage.registry.documents`).

A body that names its object in the URL (``PATCH /v1/instruments/{instrument_id}``) is the
operation's document without those fields (:func:`without`): the same fields, constraints and
descriptions, unknown keys refused. The handler puts the path's values back
(:func:`document`) and the operation validates the whole document again with every rule of
its model (the cross-field ones included), so a rule is written once, in the model.

Bodies are read as their JSON Schema in the OpenAPI document says (:class:`StrictJsonRoute`):
a number where a string is documented (``"date": 1767225600``), a string where a number is
(``"period_s": "60"``), is refused, though the models alone would convert it. Text must reach
the database as it was sent: a NUL character (PostgreSQL cannot store one) or a lone surrogate
(``"\\ud800"``: not UTF-8) is refused, naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError, create_model

from calstream.api.problems import FieldError, body_field, invalid
from storage.registry.documents import (
    AmendCalibration,
    ChangeInstrument,
    CreateContract,
    CreateSite,
    CreateTenant,
    CreateToken,
    EndContract,
    RecordCalibration,
    RegisterGateway,
    RegisterInstrument,
    RetireInstrument,
    RevokeToken,
)

__all__ = [
    "Amendment",
    "ContractEnd",
    "CreateContract",
    "CreateSite",
    "CreateTenant",
    "CreateToken",
    "InstrumentChange",
    "NewCertificate",
    "RegisterGateway",
    "RegisterInstrument",
    "Retirement",
    "Revocation",
    "StrictJsonRoute",
    "document",
    "without",
]


def without(model: type[BaseModel], *names: str, name: str) -> type[BaseModel]:
    """``model`` without the fields ``names`` (they come from the URL), as model ``name``.

    Field constraints and field-level validators are kept; the model's cross-field rules are
    applied when the operation validates the whole document.
    """
    fields: dict[str, Any] = {
        field: (info.annotation, info)
        for field, info in model.model_fields.items()
        if field not in names
    }
    return create_model(  # type: ignore[no-any-return, call-overload]
        name,
        __config__=model.model_config,
        __doc__=model.__doc__,
        __module__=__name__,
        **fields,
    )


InstrumentChange = without(ChangeInstrument, "instrument_id", name="InstrumentChange")
Retirement = without(RetireInstrument, "instrument_id", name="Retirement")
NewCertificate = without(RecordCalibration, "instrument_id", name="NewCertificate")
Amendment = without(AmendCalibration, "instrument_id", "certificate", name="Amendment")
ContractEnd = without(EndContract, "contract_id", name="ContractEnd")
Revocation = without(RevokeToken, "token_id", name="Revocation")


def _bad_text(value: Any, path: tuple[str | int, ...]) -> Iterator[FieldError]:
    if isinstance(value, str):
        if "\x00" in value:
            yield body_field(path, "text must not contain NUL characters")
        else:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                yield body_field(path, "text must be valid Unicode (a lone surrogate is not)")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _bad_text(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _bad_text(item, (*path, index))


def document(body: BaseModel, **from_url: Any) -> dict[str, Any]:
    """The operation's document: the fields the body set, and the values the URL gives."""
    given = body.model_dump(exclude_unset=True)
    errors = list(_bad_text(given, ()))
    if errors:
        raise invalid(errors)
    return {**given, **from_url}


def _refuse_bad_text(raw: bytes, exc: ValidationError) -> None:
    """pydantic's JSON parser refuses a lone surrogate escape as invalid JSON, without a place;
    the standard library reads it, so the field that carries it can be named."""
    if any(error["type"] != "json_invalid" for error in exc.errors(include_url=False)):
        return
    try:
        parsed = json.loads(raw)
    except ValueError:
        return
    errors = list(_bad_text(parsed, ()))
    if errors:
        raise invalid(errors) from None


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is validated strictly as JSON before the usual validation.

    pydantic's lax mode converts ``"60"`` to a float and ``1767225600`` to a date-time; JSON
    Schema (and so the OpenAPI document) does not. Validating the raw JSON in strict mode
    first refuses what the document refuses, with pydantic's errors placed in the body.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        field = self.body_field
        model = None if field is None else field.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return handler
        body_model: type[BaseModel] = model

        async def strict_handler(request: Request) -> Response:
            raw = await request.body()
            try:
                body_model.model_validate_json(raw, strict=True)
            except ValidationError as exc:
                _refuse_bad_text(raw, exc)
                errors = [
                    {**error, "loc": ("body", *error["loc"])}
                    for error in exc.errors(include_url=False)
                ]
                raise RequestValidationError(errors) from None
            return await handler(request)

        return strict_handler
