"""One place per notifier: the `alerts.receivers[]` model, the kinds in its error message,
the secret checks at load and the masked URLs all follow from the registry
(alerts/notifiers/__init__.py); users' configs and messages stay as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.notifiers import NOTIFIERS, Receiver, ReceiverConfig
from core.redact import SECRETS
from daemon.config import ConfigError, load_settings

GOOD = """
providers:
  - {name: sim, kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: REG_OPENAI_KEY, models: [m]}
"""
RECEIVERS = """
alerts:
  receivers:
    - {name: chat, slack: {token_env: REG_SLACK_TOKEN, webhook_url_env: REG_SLACK_HOOK, channel: "#c",
                           api_url: "http://bot:slack-pw-1@127.0.0.1:9/api/"}}
    - {name: mail, email: {host: 127.0.0.1, from: a@x, to: [b@x], username_env: REG_MAIL_USER,
                           password_file: /nonexistent/reg-mail-pw}}
    - {name: hook, webhook: {url: "http://u:hook-pw-2@127.0.0.1:9/h", hmac_secret_env: REG_HOOK_SECRET}}
    - {name: am, alertmanager: {urls: ["http://u:am-pw-3@127.0.0.1:9", "http://127.0.0.1:10"]}}
  route: {receiver: chat}
"""


def test_the_receiver_model_has_one_key_per_registered_channel() -> None:
    assert list(NOTIFIERS) == ["slack", "email", "webhook", "alertmanager"]
    assert list(Receiver.model_fields) == ["name", *NOTIFIERS]
    for kind, cls in NOTIFIERS.items():
        assert cls.kind == kind and issubclass(cls.config, ReceiverConfig)
        assert Receiver.model_fields[kind].annotation == cls.config | None


@pytest.mark.parametrize(("receiver", "got"), [
    ("{name: r}", "none"),
    ("{name: r, webhook: {url: 'http://127.0.0.1:9'}, alertmanager: {urls: ['http://127.0.0.1:9']}}",
     "['webhook', 'alertmanager']"),
])
def test_a_receiver_needs_exactly_one_channel(tmp_path: Path, receiver: str, got: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(GOOD + f"alerts:\n  receivers: [{receiver}]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert f"a receiver needs exactly one of slack, email, webhook, alertmanager (got {got})" in str(err.value)


def test_every_secret_a_receiver_references_is_checked_at_load(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REG_SLACK_TOKEN", "REG_SLACK_HOOK", "REG_MAIL_USER", "REG_HOOK_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REG_OPENAI_KEY", "sk-reg")
    f = tmp_path / "c.yaml"
    f.write_text(GOOD + RECEIVERS)
    problems = load_settings(f).check_secrets()
    assert problems == [
        "alerts.receivers.chat.slack.token: environment variable REG_SLACK_TOKEN is not set",
        "alerts.receivers.chat.slack.webhook_url: environment variable REG_SLACK_HOOK is not set",
        problems[2],  # the file's error text is the OS's; its key is checked below
        "alerts.receivers.mail.email.username: environment variable REG_MAIL_USER is not set",
        "alerts.receivers.hook.webhook.hmac_secret: environment variable REG_HOOK_SECRET is not set",
    ]
    assert problems[2].startswith("alerts.receivers.mail.email.password: ") and "reg-mail-pw" in problems[2]
    monkeypatch.setenv("REG_SLACK_TOKEN", "t")
    monkeypatch.setenv("REG_SLACK_HOOK", "h")
    monkeypatch.setenv("REG_MAIL_USER", "u")
    monkeypatch.setenv("REG_HOOK_SECRET", "s")
    assert [p for p in load_settings(f).check_secrets() if "receivers" in p] == [problems[2]]


def test_a_password_in_a_receiver_url_is_masked(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(GOOD + RECEIVERS)
    load_settings(f)
    text = SECRETS.redact("slack-pw-1 hook-pw-2 am-pw-3")
    assert not any(pw in text for pw in ("slack-pw-1", "hook-pw-2", "am-pw-3")), text


def test_every_channel_declares_each_secret_field_pair_it_has() -> None:
    # a secret the model has but does not declare would never be checked at load
    for cls in NOTIFIERS.values():
        fields = cls.config.model_fields
        pairs = {f[: -len("_env")] for f in fields if f.endswith("_env")}
        assert pairs == set(cls.config.secrets), cls.__name__
        assert {f"{p}_file" for p in pairs} <= fields.keys()


def test_a_secret_named_without_its_fields_is_refused_at_definition() -> None:
    with pytest.raises(TypeError, match="names 'token', but has no token_env, token_file"):
        class Typo(ReceiverConfig):
            secrets = ("token",)
            tokn_env: str | None = None
