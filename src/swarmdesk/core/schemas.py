"""Shared Pydantic building blocks for every domain's schemas."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


class In(BaseModel):
    """Input models accept only the fields the caller may set: anything else is a 422. Text
    never holds NUL characters (PostgreSQL cannot store them; SQLite would, unlike production)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def _custom_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    if len(attrs) > 100:
        raise ValueError("at most 100 custom attributes")
    for key, value in attrs.items():
        if not (1 <= len(key) <= 100):
            raise ValueError("custom attribute names are 1-100 characters")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"custom attribute {key!r} must be a string, number, boolean or null")
        if isinstance(value, str) and len(value) > 2000:
            raise ValueError(f"custom attribute {key!r} is longer than 2000 characters")
    return attrs


CustomAttributes = Annotated[dict[str, Any], AfterValidator(_custom_attributes)]
