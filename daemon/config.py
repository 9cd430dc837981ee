"""Settings (docs/architecture.md §8): one YAML file + LLM_VITALS_* environment overrides.

`load_settings` is the only way in: it rejects a broken file with the file, the key and
the reason (ConfigError), and `Settings.targets()` expands providers x models x probes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerts.config import AlertsConfig
from core.durations import Duration, Fraction
from core.redact import SECRETS
from core.secrets import MissingSecret, read_secret
from core.strict import Strict
from daemon.sweep_config import SweepConfig
from detector.config import DetectorConfig
from probes.images import ImageError, load_image
from probes.protocol import ProviderOption
from probes.registry import PROTOCOLS, protocol_class, provider_options
from probes.target import (
    Expectation,
    ImageSpec,
    ProbeLimits,
    ProbeSpec,
    ProbeTarget,
    ProviderSpec,
    ToolSpec,
)

ENV_PREFIX = "LLM_VITALS_"
class ConfigError(Exception):
    """A config that must not start. Each line names the file, the key and the reason."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _register_url_secrets(settings: Settings) -> None:
    """A `user:password@` in any configured URL is a secret like the `*_env` ones: httpx
    sends it as Basic auth and a server may echo it back (logs, errors, alerts)."""
    urls = [p.base_url for p in settings.providers]
    if settings.influxdb is not None:
        urls.append(settings.influxdb.url)
    for rc in settings.alerts.receivers:
        urls.extend(rc.channel.secret_urls())
    for url in urls:
        SECRETS.add_url(url)


class HttpConfig(Strict):
    listen: str = "127.0.0.1:9464"
    auth_token_env: str | None = None
    auth_token_file: str | None = None
    metrics_require_auth: bool = False
    # Host names (besides localhost, 127.0.0.1, [::1] and the listen host) this API answers
    # to, e.g. a reverse proxy's name; anything else is refused (DNS rebinding).
    allowed_hosts: list[str] = []
    grafana_url: str | None = None
    """Base URL of a Grafana with the llm-vitals dashboards: the status page links every target
    and alert to its fleet dashboard (e.g. `https://grafana.example.com`)."""

    @field_validator("grafana_url")
    @classmethod
    def _grafana(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
        return v.rstrip("/") if v is not None else None

    @field_validator("listen")
    @classmethod
    def _hostport(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected host:port, got {v!r}")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")


STATE_DIR = "{state_dir}"


def state_dir() -> Path:
    """The per-user state directory (XDG Base Directory): $XDG_STATE_HOME/llm-vitals, or
    ~/.local/state/llm-vitals. Not the working directory: the demo and the CLI find the same
    database wherever they are run from."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "llm-vitals"


class StorageConfig(Strict):
    path: str = f"{STATE_DIR}/state.db"
    """The SQLite file; `{state_dir}` is the per-user state directory ($XDG_STATE_HOME/llm-vitals
    or ~/.local/state/llm-vitals), `~` the home directory."""
    retention: Duration = 14 * 86400
    """How long probe results are kept."""
    sweep_retention: Duration = 90 * 86400
    """How long scheduled sweeps' results are kept (a few rows a night: months of capacity trend)."""

    @field_validator("path")
    @classmethod
    def _expand(cls, v: str) -> str:
        if v == ":memory:":
            return v
        return str(Path(v.replace(STATE_DIR, str(state_dir()))).expanduser())


class InfluxConfig(Strict):
    url: str
    api_version: Literal[1, 2] = 2
    org: str | None = None
    bucket: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    database: str | None = None
    retention_policy: str | None = None
    username_env: str | None = None
    username_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    batch_size: int = Field(500, ge=1)
    flush_interval: Duration = 5
    timeout: Duration = 10
    spool_max_points: int = Field(1_000_000, ge=1000)
    gzip: bool = True

    @model_validator(mode="after")
    def _version_keys(self) -> InfluxConfig:
        if self.api_version == 2 and not self.bucket:
            raise ValueError("api_version 2 needs `bucket` (and `org`, `token_env`/`token_file`)")
        if self.api_version == 1 and not self.database:
            raise ValueError("api_version 1 needs `database`")
        return self


class OtlpConfig(Strict):
    """Push metrics (and, opt-in, traces) over OTLP/HTTP with the GenAI semantic conventions."""

    endpoint: str | None = None
    """Base URL of the OTLP/HTTP receiver (`/v1/metrics`, `/v1/traces` are appended); unset:
    OTEL_EXPORTER_OTLP_ENDPOINT or its per-signal variants, else http://localhost:4318."""
    interval: Duration = 15
    """How often metrics are exported (and queued spans at the latest)."""
    timeout: Duration = 10
    """Deadline of one export, retries included."""
    headers_env: str | None = None
    """Environment variable holding headers as `k=v,k2=v2` (e.g. an API key); a secret."""
    headers_file: str | None = None
    """File holding the headers, same format; a secret."""
    traces: bool = False
    """Also send one span per probe (`chat {model}`, events at first byte and first token)."""
    max_queued_spans: int = Field(2048, ge=1)
    """Spans kept while the receiver is slow or down; past it the newest are dropped, counted."""
    service_name: str = "llm-vitals"
    """The resource's `service.name`."""

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
        return v

    @model_validator(mode="after")
    def _positive(self) -> OtlpConfig:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("interval and timeout must be greater than 0")
        return self


class ExpectConfig(Strict):
    contains: str | None = None
    regex: str | None = None
    json_: bool = Field(False, alias="json")
    min_tokens: int | None = Field(None, ge=1)
    tool_call: str | None = Field(None, min_length=1)
    """The reply's first tool call must call this tool, with arguments that are valid JSON."""

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            import re

            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v


class ToolConfig(Strict):
    """A function the model may call."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    """Its arguments as a JSON Schema (an object schema)."""

    @field_validator("parameters")
    @classmethod
    def _schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type", "object") != "object":
            raise ValueError("a tool's parameters must be a JSON Schema of `type: object`")
        return v

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description,
                        parameters_json=json.dumps(self.parameters, sort_keys=True))


class ProbeProfile(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    prompt: str = Field(min_length=1)
    max_tokens: int = Field(16, ge=1)
    system: str | None = None
    temperature: float | None = 0.0
    nonce: bool = True
    reasoning: bool = False
    reasoning_budget: int | None = None
    expect: ExpectConfig | None = None
    tools: list[ToolConfig] = []
    """Functions the model may call (a tool-call probe): the first tool-call delta is its first token."""
    image: str | None = None
    """A PNG, JPEG, GIF or WebP file sent with the prompt (a vision probe); relative to the config file."""
    _image: ImageSpec | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _parts(self) -> ProbeProfile:
        names = [t.name for t in self.tools]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"tools: duplicate tool name(s): {', '.join(dup)}")
        want = self.expect.tool_call if self.expect else None
        if want is not None and want not in names:
            raise ValueError(f"expect.tool_call: {want!r} is not one of this probe's tools "
                             f"({', '.join(names) or 'none defined'})")
        if self.image is not None:
            try:
                self._image = load_image(self.image)
            except ImageError as exc:
                raise ValueError(f"image: {exc}") from None
        return self

    def spec(self) -> ProbeSpec:
        e = self.expect
        return ProbeSpec(
            name=self.name,
            prompt=self.prompt,
            max_tokens=self.max_tokens,
            system=self.system,
            temperature=self.temperature,
            nonce=self.nonce,
            reasoning=self.reasoning,
            reasoning_budget=self.reasoning_budget,
            expect=None
            if e is None
            else Expectation(contains=e.contains, regex=e.regex, json=e.json_, min_tokens=e.min_tokens,
                             tool_call=e.tool_call),
            tools=tuple(t.spec() for t in self.tools),
            image=self._image,
        )


class Defaults(Strict):
    interval: Duration = 60
    timeout: Duration = 30
    connect_timeout: Duration = 10
    jitter: Fraction = 0.1
    probe: str = "short"


class ModelEntry(Strict):
    name: str = Field(min_length=1)
    probe: str | None = None
    probes: list[str] | None = None
    interval: Duration | None = None
    timeout: Duration | None = None


class ProviderBudget(Strict):
    """One provider's own daily budget: spending it pauses that provider's probes only."""

    daily_tokens: int | None = Field(None, ge=1)
    daily_cost_usd: float | None = Field(None, gt=0)


class Price(Strict):
    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class _ProviderFields(Strict):
    """One provider (an API endpoint and its key) and the models probed on it. Options only
    some kinds read (e.g. Bedrock's aws_region) are declared by their protocol
    (Protocol.provider_options)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str
    base_url: str
    api_key_env: str | None = None
    api_key_file: str | None = None
    headers: dict[str, str] = {}
    models: list[str | ModelEntry] = Field(min_length=1)
    prices: dict[str, Price] = {}
    interval: Duration | None = None
    timeout: Duration | None = None
    rate_limit_per_minute: float | None = Field(None, gt=0)
    budget: ProviderBudget | None = None  # this provider's daily budget (default: budgets.per_provider)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        # Checked here: a scheme-less or ftp:// URL passed `check`, then every probe failed
        # as stream_error UnsupportedProtocol.
        if not v.startswith(("http://", "https://", "{simulator}")):
            raise ValueError(f"expected an http:// or https:// URL such as https://api.openai.com/v1, got {v!r}")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in PROTOCOLS:
            raise ValueError(f"unknown provider kind {v!r} (known: {', '.join(sorted(PROTOCOLS))})")
        return v

    def model_entries(self) -> list[ModelEntry]:
        return [ModelEntry(name=m) if isinstance(m, str) else m for m in self.models]

    def spec(self, simulator_url: str | None = None) -> ProviderSpec:
        """Resolve secrets now (raises MissingSecret) into a ProviderSpec."""
        where = f"providers.{self.name}"
        key = read_secret(self.api_key_env, self.api_key_file, f"{where}.api_key")
        options: dict[str, Any] = {}
        for opt in protocol_class(self.kind).provider_options:
            value = getattr(self, opt.key, None)
            if opt.type == "flag":
                if value:
                    options[opt.name] = True
            elif opt.type == "secret_env":
                secret = read_secret(value, None, f"{where}.{opt.name}") if value else None
                if secret is not None:
                    options[opt.name] = secret
            elif (value or opt.default) is not None:
                options[opt.name] = value or opt.default
        base = self.base_url
        if "{simulator}" in base:
            if simulator_url is None:
                raise MissingSecret(f"{where}.base_url: uses {{simulator}} but the simulator is not enabled")
            base = base.replace("{simulator}", simulator_url)
        return ProviderSpec(
            name=self.name,
            kind=self.kind,
            base_url=base.rstrip("/"),
            api_key=key,
            headers=tuple(self.headers.items()),
            options=options,
        )


    def foreign_options(self) -> list[str]:
        """Options set here that this provider's kind does not read."""
        own = {o.key for o in protocol_class(self.kind).provider_options}
        return [k for k in provider_options() if k not in own and k in self.model_fields_set]


def _option_field(opt: ProviderOption) -> Any:
    if opt.type == "flag":
        return (bool, Field(False, description=opt.doc))
    return (str | None, Field(None, description=opt.doc if opt.default is None else f"{opt.doc} (default {opt.default})"))


if TYPE_CHECKING:
    ProviderConfig = _ProviderFields
else:
    # the provider model: its common fields plus every option a protocol declares
    ProviderConfig = create_model("ProviderConfig", __base__=_ProviderFields, __doc__=_ProviderFields.__doc__,
                                  **{k: _option_field(o) for k, o in provider_options().items()})


class Budgets(Strict):
    # Global: spending it pauses every target.
    daily_tokens: int | None = Field(None, ge=1)
    daily_cost_usd: float | None = Field(None, gt=0)
    # Each provider's own, unless the provider sets `budget`: spending it pauses that provider only.
    per_provider: ProviderBudget = ProviderBudget()


class LimitsConfig(Strict):
    """What one probe's response may cost (past the byte limits: stream_error)."""

    max_line_bytes: int = Field(ProbeLimits.max_line_bytes, ge=1024)
    max_stream_bytes: int = Field(ProbeLimits.max_stream_bytes, ge=64 * 1024)
    max_reply_chars: int = Field(ProbeLimits.max_reply_chars, ge=256, le=65536)

    def spec(self) -> ProbeLimits:
        return ProbeLimits(self.max_line_bytes, self.max_stream_bytes, self.max_reply_chars)


class SchedulerConfig(Strict):
    max_concurrency: int = Field(64, ge=1)
    degraded_interval: Duration | None = None  # probe more often while a target is degraded
    collector_queue: int = Field(10_000, ge=10)


class MetricsConfig(Strict):
    """What /metrics exports: series cost money in every Prometheus (README "Metrics and their cost")."""

    detail: Literal["minimal", "standard", "full"] = "standard"
    """Per-target series: `minimal` (14: outcomes, success, last probe, its phases), `standard`
    (at most 50: plus ttft and e2e histograms, tokens, cost, anomaly scores, skips) or `full`
    (every histogram, HDR quantiles and rate-limit headroom: about 360). Applies at start."""


class ShardingConfig(Strict):
    """Split the targets across replicas (each probes only its own shard)."""

    shards: int = Field(1, ge=1)
    """Number of replicas sharing this config's targets."""
    shard: int | Literal["auto"] = 0
    """This replica's shard, 0..shards-1, or `auto`: the trailing ordinal of the host name
    (`llm-vitals-2` → 2, as a Kubernetes StatefulSet names its pods)."""

    @model_validator(mode="after")
    def _in_range(self) -> ShardingConfig:
        shard = self.index
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} is not in 0..{self.shards - 1}")
        return self

    @property
    def index(self) -> int:
        if self.shard == "auto":
            from daemon.sharding import ordinal_of

            return ordinal_of()
        return self.shard

    def owns(self, key: str) -> bool:
        from daemon.sharding import shard_of

        return self.shards == 1 or shard_of(key, self.shards) == self.index


class SimulatorConfig(Strict):
    enabled: bool = False
    scenario: str | None = None  # a scenario YAML; the built-in one when unset
    host: str = "127.0.0.1"
    port: int = 0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    region: str = Field("local", pattern=r"^[A-Za-z0-9_.-]+$")
    """Label `region` on every series, alert and point: one replica per region."""
    http: HttpConfig = HttpConfig()
    """The HTTP server: /metrics, /healthz, /readyz, /api/v1/*, the status page."""
    storage: StorageConfig = StorageConfig()
    """The embedded SQLite store (probe results, alert and detector state)."""
    influxdb: InfluxConfig | None = None
    """Optional InfluxDB sink (v2 API, or v1 with `api_version: 1`)."""
    otlp: OtlpConfig | None = None
    """Optional OTLP/HTTP push (OpenTelemetry Collector, Alloy, a vendor's endpoint)."""
    probes: list[ProbeProfile] = [
        ProbeProfile(name="short", prompt="Reply with exactly one word: pong", max_tokens=16,
                     expect=ExpectConfig(contains="pong"))
    ]
    """Probe profiles: the prompt, its token limit and what the reply must hold."""
    defaults: Defaults = Defaults()
    """Interval, timeout, jitter and probe profile for targets that do not set their own."""
    providers: list[ProviderConfig] = []
    """Providers to probe; each model of each provider, times each probe profile, is a target."""
    budgets: Budgets = Budgets()
    """Daily limits on the tokens and money probing may spend: globally, and per provider."""
    sweeps: list[SweepConfig] = []
    """Capacity sweeps run on a cron schedule (one at a time, within the budgets)."""
    limits: LimitsConfig = LimitsConfig()
    """What one response may cost: line, stream and reply-text sizes."""
    scheduler: SchedulerConfig = SchedulerConfig()
    """Concurrency and queue sizes."""
    metrics: MetricsConfig = MetricsConfig()
    """The Prometheus series budget."""
    sharding: ShardingConfig = ShardingConfig()
    """Targets split across replicas: this process probes only the targets of its shard."""
    simulator: SimulatorConfig = SimulatorConfig()
    """The bundled provider simulator (the built-in demo's target)."""
    detector: DetectorConfig = DetectorConfig()
    """The statistical anomaly detector."""
    alerts: AlertsConfig = AlertsConfig()
    """Alert rules, receivers, routing, silences and maintenance windows."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (the file arrives as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        profiles = [p.name for p in self.probes]
        dup = sorted({n for n in profiles if profiles.count(n) > 1})
        if dup:
            raise ValueError(f"probes: duplicate probe profile name(s): {', '.join(dup)}")
        pnames = [p.name for p in self.providers]
        dup = sorted({n for n in pnames if pnames.count(n) > 1})
        if dup:
            raise ValueError(f"providers: duplicate provider name(s): {', '.join(dup)}")
        if self.defaults.probe not in profiles:
            raise ValueError(f"defaults.probe: unknown probe profile {self.defaults.probe!r}")
        seen: set[str] = set()
        for i, prov in enumerate(self.providers):
            for j, m in enumerate(prov.model_entries()):
                for probe in self._probe_names(m):
                    if probe not in profiles:
                        raise ValueError(
                            f"providers[{i}].models[{j}]: unknown probe profile {probe!r} (known: {', '.join(profiles)})"
                        )
                    key = f"{prov.name}/{m.name}/{probe}"
                    if key in seen:
                        raise ValueError(f"providers[{i}].models[{j}]: duplicate target {key}")
                    seen.add(key)
        names = [w.name for w in self.sweeps]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sweeps: duplicate sweep name(s): {', '.join(dup)}")
        for i, w in enumerate(self.sweeps):
            if self.sweep_entry(w) is None:
                raise ValueError(f"sweeps[{i}] ({w.name}).target: no such target {w.target!r} "
                                 f"(configured: {', '.join(sorted(seen)) or 'none'})")
        if not self.http.is_loopback and not (self.http.auth_token_env or self.http.auth_token_file):
            raise ValueError(
                f"http.listen: {self.http.listen} is not loopback, so http.auth_token_env or "
                "http.auth_token_file is required"
            )
        return self

    def _probe_names(self, m: ModelEntry) -> list[str]:
        return m.probes or [m.probe or self.defaults.probe]

    def target_entries(self) -> list[tuple[ProviderConfig, ModelEntry, ProbeProfile]]:
        by_name = {p.name: p for p in self.probes}
        return [
            (prov, m, by_name[probe])
            for prov in self.providers
            for m in prov.model_entries()
            for probe in self._probe_names(m)
        ]

    def sweep_entry(self, sweep: SweepConfig) -> tuple[ProviderConfig, ModelEntry, ProbeProfile] | None:
        """The target a sweep sweeps: PROVIDER/MODEL/PROBE, or PROVIDER/MODEL's first probe profile."""
        parts = sweep.target.split("/")
        for prov, m, profile in self.target_entries():
            if prov.name == parts[0] and m.name == parts[1] and (len(parts) == 2 or profile.name == parts[2]):
                return prov, m, profile
        return None

    def sweep_key(self, sweep: SweepConfig) -> str:
        entry = self.sweep_entry(sweep)
        assert entry is not None  # checked at load
        return f"{entry[0].name}/{entry[1].name}/{entry[2].name}"

    def owned_targets(self, simulator_url: str | None = None) -> list[ProbeTarget]:
        """The targets of this replica's shard (all of them without sharding)."""
        return [t for t in self.targets(simulator_url) if self.sharding.owns(t.key)]

    def targets(self, simulator_url: str | None = None) -> list[ProbeTarget]:
        """Every target with its secrets resolved (raises MissingSecret)."""
        specs: dict[str, ProviderSpec] = {}
        limits = self.limits.spec()
        out = []
        for prov, m, profile in self.target_entries():
            if prov.name not in specs:
                specs[prov.name] = prov.spec(simulator_url)
            out.append(
                ProbeTarget(
                    provider=specs[prov.name],
                    model=m.name,
                    probe=profile.spec(),
                    region=self.region,
                    timeout=m.timeout or prov.timeout or self.defaults.timeout,
                    connect_timeout=self.defaults.connect_timeout,
                    limits=limits,
                )
            )
        return out

    def warnings(self) -> list[str]:
        """What loads but probably is not what was meant: 'key: reason' lines."""
        out = []
        for i, prov in enumerate(self.providers):
            for j, m in enumerate(prov.model_entries()):
                interval = m.interval or prov.interval or self.defaults.interval
                timeout = m.timeout or prov.timeout or self.defaults.timeout
                if timeout > interval:
                    out.append(f"providers[{i}] ({prov.name}).models[{j}] ({m.name}): timeout {timeout:g}s is "
                               f"longer than the interval {interval:g}s: a slow probe makes the next one skip "
                               "(llm_vitals_probes_skipped_total{reason=\"overlap\"})")
            for key in prov.foreign_options():
                out.append(f"providers[{i}] ({prov.name}).{key}: not read by kind {prov.kind} (ignored)")
        return out

    def provider_budgets(self) -> dict[str, ProviderBudget]:
        """Each provider's own daily budget (its `budget`, else `budgets.per_provider`)."""
        return {p.name: p.budget or self.budgets.per_provider for p in self.providers}

    def interval_for(self, provider: str, model: str) -> float:
        for prov in self.providers:
            if prov.name == provider:
                for m in prov.model_entries():
                    if m.name == model:
                        return m.interval or prov.interval or self.defaults.interval
        return self.defaults.interval

    def price_for(self, provider: str, model: str) -> Price | None:
        for prov in self.providers:
            if prov.name == provider:
                return prov.prices.get(model)
        return None

    def check_secrets(self) -> list[str]:
        """Every referenced secret that is missing, as 'key: reason' lines."""
        problems: list[str] = []
        sim = "http://127.0.0.1:0" if self.simulator.enabled else None
        for prov in self.providers:
            try:
                prov.spec(sim)
            except MissingSecret as exc:
                problems.append(str(exc))
        if self.http.auth_token_env or self.http.auth_token_file:
            try:
                read_secret(self.http.auth_token_env, self.http.auth_token_file, "http.auth_token")
            except MissingSecret as exc:
                problems.append(str(exc))
        if self.influxdb is not None:
            ix = self.influxdb
            for what in ("token", "username", "password"):
                try:
                    read_secret(getattr(ix, f"{what}_env"), getattr(ix, f"{what}_file"), f"influxdb.{what}")
                except MissingSecret as exc:
                    problems.append(str(exc))
        if self.otlp is not None and (self.otlp.headers_env or self.otlp.headers_file):
            try:
                read_secret(self.otlp.headers_env, self.otlp.headers_file, "otlp.headers")
            except MissingSecret as exc:
                problems.append(str(exc))
        for rc in self.alerts.receivers:
            problems.extend(rc.missing_secrets())
        return problems


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """('providers', 0, 'kind') → 'providers[0].kind', with names where the list has them."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict) and "name" in node[part]:
                label = f"[{part}] ({node[part]['name']})"
            out += label
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            # pydantic puts union branch names in loc ("str", "ModelEntry"); skip those
            if isinstance(node, dict) or node is None:
                out += ("." if out else "") + str(part)
                node = node.get(part) if isinstance(node, dict) else None
            else:
                continue
    return out or "(top level)"


def _env_source(loc: tuple[Any, ...]) -> str | None:
    """The LLM_VITALS_* variable that set the value at `loc` (or a mapping above it), if any."""
    parts: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break
        parts.append(part.upper())
    for n in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:n])
        if name in os.environ:
            return name
    return None


def _format_errors(exc: ValidationError, source: str, data: Any) -> list[str]:
    lines = []
    seen = set()
    for err in exc.errors():
        loc = _loc(tuple(err.get("loc", ())), data)
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key (typo?)"
        msg = msg.removeprefix("Value error, ")
        env = _env_source(tuple(err.get("loc", ())))
        if env:
            msg += f" (from environment variable {env}, which overrides the file)"
        line = f"{source}: {loc}: {msg}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def load_settings(path: str | os.PathLike[str] | None) -> Settings:
    """Parse and validate; raise ConfigError with 'file: key: reason' lines."""
    source = str(path) if path is not None else "(built-in defaults)"
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError([f"{source}: cannot read: {exc.strerror}"]) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError([f"{source}: {where}invalid YAML: {problem}"]) from None
        if not isinstance(data, dict):
            raise ConfigError([f"{source}: (top level): expected a mapping of keys, got {type(data).__name__}"])
        if not data:
            # /dev/null, a truncated file or one still being written: running it would
            # silently probe nothing (and a reload would drop every target)
            raise ConfigError([f"{source}: (top level): the file is empty (no settings, no providers)"])
    if path is not None:
        _anchor_images(data, Path(path).parent)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, data)) from None
    _register_url_secrets(settings)
    return settings


def _anchor_images(data: dict[str, Any], base: Path) -> None:
    """A probe's relative `image` path is relative to its config file, not to wherever
    the daemon happens to be started from."""
    probes = data.get("probes")
    if not isinstance(probes, list):
        return
    for p in probes:
        if isinstance(p, dict) and isinstance(p.get("image"), str):
            image = os.path.expanduser(p["image"])
            if not os.path.isabs(image):
                p["image"] = str(base / image)


def require_targets(settings: Settings, source: str) -> None:
    """For what probes (check, run, reload): a config without providers would run and
    probe nothing. (The alert commands need none.)"""
    if not settings.providers:
        raise ConfigError([f"{source}: providers: no providers configured: there is nothing to probe"])
