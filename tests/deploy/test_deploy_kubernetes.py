"""Kubernetes manifests (deploy/kubernetes): every overlay rendered the way kustomize does
for the features we use, then validated offline against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors); the prometheus-operator CRDs
against their essential shape, the PrometheusRule's groups with promtool."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from daemon.config import load_settings
from tests.factories import REPO

K8S = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
K8S_VERSION = "1.30"

Doc = dict[str, Any]


# -- a small kustomize: resources, namespace, labels, images, secretGenerator, JSON6902 patches
def _pointer(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for p in path.lstrip("/").split("/"):
        p = p.replace("~1", "/").replace("~0", "~")
        parts.append(int(p) if p.isdigit() else p)
    return parts


def _json_patch(doc: Doc, ops: list[Doc]) -> None:
    for op in ops:
        *parents, last = _pointer(op["path"])
        node: Any = doc
        for p in parents:
            node = node[p]
        if op["op"] == "replace":
            node[last]  # must exist
            node[last] = op["value"]
        elif op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), op["value"])
            else:
                node[last] = op["value"]
        elif op["op"] == "remove":
            del node[last]
        else:
            raise AssertionError(f"unsupported patch op {op['op']}")


def build(directory: Path) -> list[Doc]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    known = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "secretGenerator", "patches"}
    assert set(k) <= known, f"{directory}: kustomize feature not covered by this test: {set(k) - known}"
    docs: list[Doc] = []
    for res in k.get("resources", []):
        path = directory / res
        if path.is_dir():
            docs += build(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for gen in k.get("secretGenerator", []):
        files = {}
        for f in gen.get("files", []):
            key, _, src = f.partition("=")
            src = src or key
            assert (directory / src).parent.is_dir(), f"{directory}: no directory for {src}"
            files[Path(key).name] = "cGxhY2Vob2xkZXI="  # the operator's file; its content is theirs
        docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": gen["name"]}, "data": files})
    for d in docs:
        if k.get("namespace") and d["kind"] not in CLUSTER_SCOPED:
            d["metadata"]["namespace"] = k["namespace"]
        for lab in k.get("labels", []):
            assert not lab.get("includeSelectors") and not lab.get("includeTemplates")
            d["metadata"].setdefault("labels", {}).update(lab["pairs"])
    for img in k.get("images", []):
        for d in docs:
            for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                name, _, tag = c["image"].partition(":")
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', tag)}"
    for patch in k.get("patches", []):
        t = patch["target"]
        hits = [d for d in docs if d["kind"] == t["kind"] and d["metadata"]["name"] == t["name"]]
        assert len(hits) == 1, f"{directory}: patch target {t} matches {len(hits)} resources"
        _json_patch(hits[0], yaml.safe_load(patch["patch"]))
    return docs


def by_kind(docs: list[Doc]) -> dict[str, Doc]:
    out = {d["kind"]: d for d in docs}
    assert len(out) == len(docs), "one resource per kind expected"
    return out


# -- CRD shapes (the operator's CRDs are not in the Kubernetes schemas) ----------------
_META = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"},
         "namespace": {"type": "string"}, "labels": {"type": "object"}, "annotations": {"type": "object"}},
         "additionalProperties": False}
SERVICE_MONITOR = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"}, "metadata": _META,
        "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False, "properties": {
            "jobLabel": {"type": "string"},
            "selector": {"type": "object", "properties": {"matchLabels": {"type": "object"}}, "additionalProperties": False},
            "namespaceSelector": {"type": "object"},
            "endpoints": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": False, "properties": {
                "port": {"type": "string"}, "path": {"type": "string"}, "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}, "scheme": {"enum": ["http", "https"]},
                "bearerTokenSecret": {"type": "object"}, "relabelings": {"type": "array"}}}}}},
    },
}
PROMETHEUS_RULE = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"}, "metadata": _META,
        "spec": {"type": "object", "required": ["groups"], "additionalProperties": False, "properties": {
            "groups": {"type": "array", "items": {"type": "object", "required": ["name", "rules"], "additionalProperties": False,
                       "properties": {"name": {"type": "string"}, "interval": {"type": "string"}, "rules": {"type": "array", "items": {
                           "type": "object", "required": ["expr"], "additionalProperties": False,
                           "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
                           "properties": {"record": {"type": "string"}, "alert": {"type": "string"}, "expr": {"type": "string"},
                                          "for": {"type": "string"}, "labels": {"type": "object"},
                                          "annotations": {"type": "object"}}}}}}}}},
    },
}


def validate(docs: list[Doc]) -> None:
    """Kubernetes kinds against the cluster's schemas (strict), the operator's CRDs against their shape."""
    for d in docs:
        if d["kind"] == "ServiceMonitor":
            jsonschema.validate(d, SERVICE_MONITOR)
        elif d["kind"] == "PrometheusRule":
            jsonschema.validate(d, PROMETHEUS_RULE)
        else:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)


# -- tests -----------------------------------------------------------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_against_kubernetes_schemas(overlay: str) -> None:
    docs = build(K8S / "overlays" / overlay)
    kinds = by_kind(docs)
    assert set(kinds) == {"ServiceAccount", "ConfigMap", "Secret", "Deployment", "Service", "ServiceMonitor",
                          "PrometheusRule", "PodDisruptionBudget"}
    validate(docs)
    for d in docs:
        assert d["metadata"]["namespace"] == "llm-vitals"
        assert d["metadata"]["labels"]["topology.llm-vitals.io/region"] == overlay


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_wires_region_probes_secret_and_config(overlay: str) -> None:
    kinds = by_kind(build(K8S / "overlays" / overlay))
    dep = kinds["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert {"name": "LLM_VITALS_REGION", "value": overlay} in c["env"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["image"].endswith(":0.1.0") and "/" in c["image"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    # selectors agree
    sel = dep["spec"]["selector"]["matchLabels"]
    assert sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    for kind in ("Service", "PodDisruptionBudget"):
        s = kinds[kind]["spec"]["selector"]
        assert (s.get("matchLabels") or s) == sel, kind
    assert kinds["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items() <= kinds["Service"]["metadata"]["labels"].items()
    assert kinds["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == kinds["Service"]["spec"]["ports"][0]["name"]
    # hardened pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    # volumes: the ConfigMap and generated Secret exist, and the config names only mounted secrets
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["config"]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    assert vols["secrets"]["secret"]["secretName"] == kinds["Secret"]["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    config_text = kinds["ConfigMap"]["data"]["config.yaml"]
    secret_keys = set(kinds["Secret"]["data"])
    for line in config_text.splitlines():
        if "_file:" in line:
            path = line.split("_file:")[1].strip()
            assert path.startswith(mounts["secrets"] + "/"), line
            assert path.rsplit("/", 1)[1] in secret_keys, line
    assert mounts["state"] == "/var/lib/llm-vitals"


def test_configmap_config_is_a_valid_llm_vitals_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cm = yaml.safe_load((K8S / "base" / "configmap.yaml").read_text())
    cfg = tmp_path / "config.yaml"
    cfg.write_text(cm["data"]["config.yaml"])
    monkeypatch.setenv("LLM_VITALS_REGION", "eu-west-1")
    s = load_settings(cfg)
    assert s.region == "eu-west-1"  # the overlay's env var wins over the file
    assert s.http.port == 9464 and not s.http.is_loopback and s.http.auth_token_file
    assert s.storage.path.startswith("/var/lib/llm-vitals/")


def test_prometheusrule_is_generated_from_the_rule_files(tmp_path: Path) -> None:
    import sys

    r = subprocess.run([sys.executable, str(REPO / "deploy" / "build.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (.ci/run installs the Debian package prometheus)")
    rule = yaml.safe_load((K8S / "base" / "prometheusrule.yaml").read_text())
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_secrets_directories_keep_keys_out_of_git() -> None:
    for overlay in OVERLAYS:
        ignore = (K8S / "overlays" / overlay / "secrets" / ".gitignore").read_text().split()
        assert ignore == ["*", "!.gitignore"]


def test_renderer_applies_patches_like_kustomize() -> None:
    doc = {"spec": {"containers": [{"env": [{"name": "A", "value": "x"}]}]}}
    d = copy.deepcopy(doc)
    _json_patch(d, [{"op": "replace", "path": "/spec/containers/0/env/0/value", "value": "y"},
                    {"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "B"}}])
    assert d["spec"]["containers"][0]["env"] == [{"name": "A", "value": "y"}, {"name": "B"}]
    with pytest.raises(KeyError):
        _json_patch(d, [{"op": "replace", "path": "/spec/nope", "value": 1}])


def test_sharded_variant_runs_one_shard_per_statefulset_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = build(K8S / "sharded")
    validate(docs)
    (ss,) = [d for d in docs if d["kind"] == "StatefulSet"]
    assert not [d for d in docs if d["kind"] == "Deployment"]
    headless = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == ss["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    scraped = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] != ss["spec"]["serviceName"]]
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    matches = [s for s in (*scraped, headless)
               if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert matches == scraped  # each pod scraped once, not again through the headless Service
    (c,) = ss["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert int(env["LLM_VITALS_SHARDING__SHARDS"]) == ss["spec"]["replicas"] and env["LLM_VITALS_SHARDING__SHARD"] == "auto"
    assert [t["metadata"]["name"] for t in ss["spec"]["volumeClaimTemplates"]] == ["state"]
    # every pod name the StatefulSet gives loads the ConfigMap's config as a distinct shard
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(cm["data"]["config.yaml"])
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import daemon.sharding as sharding

    seen = set()
    for ordinal in range(ss["spec"]["replicas"]):
        monkeypatch.setattr(sharding.socket, "gethostname", lambda o=ordinal: f"{ss['metadata']['name']}-{o}")
        s = load_settings(cfg)
        seen.add((s.sharding.index, s.sharding.shards))
    assert seen == {(i, 3) for i in range(3)}
