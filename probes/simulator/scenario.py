"""Simulator scenarios: per-model scripts (latency, length, reasoning, faults) and a time
schedule of degradations. YAML, validated; unknown keys are errors."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.durations import Duration, Fraction

FaultKind = Literal[
    "http_429", "http_500", "http_503", "http_529", "stall_before_headers", "slow_headers",
    "stall_mid_stream", "truncate", "disconnect", "malformed_json", "error_event", "bad_crc",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fault(_Strict):
    kind: FaultKind
    probability: float = Field(1.0, ge=0, le=1)
    after_tokens: int = Field(2, ge=0)  # mid-stream faults strike after this many tokens
    duration: Duration = 3600  # stalls and slow headers
    retry_after: Duration = 2  # http_429


class Script(_Strict):
    ttft: Duration = 0.3
    itl: Duration = 0.02
    jitter: Fraction = 0.1
    tokens: int = Field(12, ge=1)
    reasoning_tokens: int = Field(0, ge=0)
    reasoning_itl: Duration = 0.01
    reply: str = "pong"  # the first visible token; the rest are filler words
    usage: bool = True
    faults: list[Fault] = []


class ModelScript(_Strict):
    ttft: Duration | None = None
    itl: Duration | None = None
    jitter: Fraction | None = None
    tokens: int | None = Field(None, ge=1)
    reasoning_tokens: int | None = Field(None, ge=0)
    reasoning_itl: Duration | None = None
    reply: str | None = None
    usage: bool | None = None
    faults: list[Fault] | None = None


class Degradation(_Strict):
    at: Duration
    duration: Duration
    models: str = "*"  # glob
    ttft_factor: float = Field(1.0, gt=0)
    itl_factor: float = Field(1.0, gt=0)
    fault: Fault | None = None


class Scenario(_Strict):
    defaults: Script = Script()
    models: dict[str, ModelScript] = {}
    schedule: list[Degradation] = []
    # Streams served at once; more wait in a FIFO queue for a slot before their ttft
    # clock starts (a server's batch limit: vLLM max_num_seqs, Ollama NUM_PARALLEL).
    max_streams: int | None = Field(None, ge=1)

    def script_for(self, model: str, elapsed: float) -> tuple[Script, list[Fault]]:
        """The model's script at `elapsed` seconds after start, with active degradations applied."""
        base = self.defaults.model_dump()
        override = self.models.get(model)
        if override is not None:
            base.update({k: v for k, v in override.model_dump().items() if v is not None})
        script = Script(**base)
        faults = list(script.faults)
        for d in self.schedule:
            if d.at <= elapsed < d.at + d.duration and fnmatch.fnmatchcase(model, d.models):
                script = script.model_copy(update={"ttft": script.ttft * d.ttft_factor, "itl": script.itl * d.itl_factor})
                if d.fault is not None:
                    faults.append(d.fault)
        return script, faults


class ScenarioError(ValueError):
    pass


def load_scenario(path: str | Path | None) -> Scenario:
    """A scenario from YAML; the built-in default when `path` is None."""
    src = Path(path) if path is not None else Path(__file__).with_name("default.yaml")
    try:
        data = yaml.safe_load(src.read_text()) or {}
        return Scenario(**data)
    except OSError as exc:
        raise ScenarioError(f"{src}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{src}: invalid YAML: {exc}") from None
    except ValidationError as exc:
        lines = [f"{src}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ScenarioError("\n".join(lines)) from None
