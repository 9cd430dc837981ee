"""Base for every config model: unknown keys are errors (a typo must not switch monitoring off)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # Attribute docstrings become field descriptions: docs/configuration.md and the JSON Schema
    # show them.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True)
