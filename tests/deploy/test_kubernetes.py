"""deploy/kubernetes: what `kubectl apply -k` would send is valid, hardened and wired together.

Every kustomization is rendered with `kubectl kustomize` and validated offline against the
schemas of a current Kubernetes release (kubernetes-validate --strict). That package has no
schemas for the Prometheus Operator's ServiceMonitor and PrometheusRule, so their contents are
checked here against what they must match: the Service, the rule files (and promtool), the
dashboard file.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import exporter
from exporter.cli import DEFAULT_PORT, parse_args
from exporter.config.load import parse_config
from tests.support.tools import require_tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
# Every kustomization a user applies as it is; components are tested through them.
BUILDS = (
    "base",
    "overlays/kube-prometheus-stack",
    "overlays/call-outcomes",
    "overlays/sharded",
)
OPERATOR_BUILD = "overlays/kube-prometheus-stack"
CALLS_BUILD = "overlays/call-outcomes"  # OPERATOR_BUILD with components/call-outcomes
SHARDED_BUILD = "overlays/sharded"  # CALLS_BUILD with components/sharded
KUBERNETES_VERSION = "1.37"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
SECRET_NAME = "aivoice-exporter-api"
PUSH_SECRET_NAME = "aivoice-exporter-push"
PUSH_SERVICE = "aivoice-exporter-push"
OPERATIONS = ROOT / "docs" / "operations.md"
RULE_FILES = (ROOT / "prometheus" / "rules.yml", ROOT / "prometheus" / "alerts.yml")
DASHBOARD = ROOT / "grafana" / "aivoice-dashboard.json"
IMAGE_UID = 10188  # the Dockerfile's USER


def kustomize(folder: Path) -> str:
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


Resources = list[dict[str, Any]]


@pytest.fixture(scope="module")
def builds() -> dict[str, Resources]:
    """Every build, rendered once for the module's tests (which only read them)."""
    return {b: [d for d in yaml.safe_load_all(kustomize(KUBERNETES / b)) if d] for b in BUILDS}


@pytest.fixture(scope="module")
def base(builds: dict[str, Resources]) -> Resources:
    return builds["base"]


@pytest.fixture(scope="module")
def operator(builds: dict[str, Resources]) -> Resources:
    return builds[OPERATOR_BUILD]


@pytest.fixture(scope="module")
def calls(builds: dict[str, Resources]) -> Resources:
    return builds[CALLS_BUILD]


@pytest.fixture(scope="module")
def sharded(builds: dict[str, Resources]) -> Resources:
    return builds[SHARDED_BUILD]


def find(resources: Resources, kind: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] == kind]
    return found


def named(resources: Resources, kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def workload(resources: Resources) -> dict[str, Any]:
    """The one Deployment or StatefulSet that runs the exporter."""
    (found,) = [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]
    return found


def pod_template(resources: Resources) -> dict[str, Any]:
    template: dict[str, Any] = workload(resources)["spec"]["template"]
    return template


def container(resources: Resources) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_template(resources)["spec"]["containers"]
    (only,) = containers
    return only


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def validate(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, "-"],
        input=text, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _name(resource: dict[str, Any]) -> str:
    return f"{resource['kind'].lower()}/{resource['metadata']['name']}"


# --- valid for Kubernetes -------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDS)
def test_build_is_valid_for_a_current_kubernetes(build: str, builds: dict[str, Resources]) -> None:
    result = validate(kustomize(KUBERNETES / build))
    assert result.returncode == 0, result.stdout + result.stderr
    passed = set(re.findall(r"^INFO .* passed for resource (\S+) against", result.stdout, re.M))
    built_in = {_name(r) for r in builds[build] if r["kind"] not in OPERATOR_KINDS}
    # A resource without a schema is only warned about: only the operator's kinds may be.
    assert passed == built_in, result.stdout
    unchecked = re.findall(r"^WARN .* kind (\S+) with", result.stdout, re.M)
    assert set(unchecked) <= OPERATOR_KINDS, result.stdout


def test_strict_validation_rejects_an_unknown_field(base: Resources) -> None:
    """The check above can fail: a misspelt field is an error, not silently ignored."""
    broken = json.loads(json.dumps(find(base, "Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "readOnlyRootFilesytem": True
    }
    result = validate(yaml.safe_dump(broken))
    assert result.returncode != 0
    assert "readOnlyRootFilesytem" in result.stdout


def test_every_kustomization_is_a_tested_build_or_a_component_one_uses() -> None:
    builds: set[str] = set()
    components: set[str] = set()
    for path in KUBERNETES.rglob("kustomization.yaml"):
        folder = path.parent.relative_to(KUBERNETES).as_posix()
        kind = yaml.safe_load(path.read_text())["kind"]
        (components if kind == "Component" else builds).add(folder)
    assert builds == set(BUILDS)
    used = set()
    for build in BUILDS:
        data = yaml.safe_load((KUBERNETES / build / "kustomization.yaml").read_text())
        for relative in data.get("components", []):
            used.add((KUBERNETES / build / relative).resolve().relative_to(KUBERNETES).as_posix())
    assert components == used


# --- the Deployment -------------------------------------------------------------------------------


def test_one_replica_and_never_two_at_once(base: Resources) -> None:
    spec = find(base, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("build", BUILDS)
def test_pod_meets_the_restricted_pod_security_standard(
    build: str, builds: dict[str, Resources]
) -> None:
    pod = pod_template(builds[build])["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(builds[build])["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    assert not any(key in pod for key in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in volume for volume in pod["volumes"])


@pytest.mark.parametrize("build", [OPERATOR_BUILD, CALLS_BUILD, SHARDED_BUILD])
def test_overlay_namespace_enforces_the_restricted_standard(
    build: str, builds: dict[str, Resources]
) -> None:
    namespace = find(builds[build], "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    others = [r for r in builds[build] if r["kind"] != "Namespace"]
    assert {r["metadata"]["namespace"] for r in others} == {namespace["metadata"]["name"]}


def test_pod_runs_as_the_image_user(base: Resources) -> None:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert users == [f"{IMAGE_UID}:{IMAGE_UID}"]
    context = pod_template(base)["spec"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (IMAGE_UID, IMAGE_UID)


def test_image_tag_is_the_exporter_version(base: Resources) -> None:
    name, _, tag = container(base)["image"].rpartition(":")
    assert (name, tag) == ("aivoice-exporter", exporter.__version__)


def test_probes_are_health_for_liveness_and_ready_for_readiness(base: Resources) -> None:
    box = container(base)
    (port,) = box["ports"]
    assert port["containerPort"] == DEFAULT_PORT
    assert box["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": port["name"]}
    assert box["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": port["name"]}


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_resources_cover_the_benchmarked_peak_of_50000_tasks(base: Resources) -> None:
    """docs/operations.md: the first poll of 50,000 tasks peaks at about 270 MiB resident;
    one core renders."""
    resources = container(base)["resources"]
    for name in ("cpu", "memory"):
        assert _quantity(resources["requests"][name]) <= _quantity(resources["limits"][name])
    assert _quantity(resources["limits"]["memory"]) >= 300 * 2**20
    assert _quantity(resources["limits"]["cpu"]) >= 1


def _mounts(resources: Resources) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there (a StatefulSet's claim templates included)."""
    volumes = {v["name"]: v for v in pod_template(resources)["spec"]["volumes"]}
    for claim in workload(resources)["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"volumeClaimTemplate": claim}
    return {m["mountPath"]: volumes[m["name"]] for m in container(resources)["volumeMounts"]}


def _config_map(resources: Resources) -> dict[str, Any]:
    (found,) = [r for r in resources if r["metadata"]["name"].startswith("aivoice-exporter-config")]
    return found


@pytest.mark.parametrize("build", BUILDS)
def test_config_is_the_configmap_mounted_where_the_exporter_reads_it(
    build: str, builds: dict[str, Resources]
) -> None:
    resources = builds[build]
    (flag,) = [a for a in container(resources)["args"] if a.startswith("--config.file=")]
    path = Path(flag.partition("=")[2])
    volume = _mounts(resources)[str(path.parent)]
    assert volume["configMap"]["name"] == _config_map(resources)["metadata"]["name"]
    assert path.name in _config_map(resources)["data"]


def test_config_is_valid_and_reads_the_secret_from_the_mounted_secret(
    base: Resources, tmp_path: Path
) -> None:
    data = yaml.safe_load(_config_map(base)["data"]["config.yaml"])
    (account,) = data["accounts"]
    secret_path = Path(account["api_secret_file"])
    volume = _mounts(base)[str(secret_path.parent)]
    assert volume["secret"]["secretName"] == SECRET_NAME
    # Readable by the image's user through fsGroup, and by nobody else.
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod_template(base)["spec"]["securityContext"]["fsGroup"] == IMAGE_UID
    secret_file = tmp_path / secret_path.name
    secret_file.write_text("not-a-real-secret\n")
    account["api_secret_file"] = str(secret_file)
    assert parse_config(data, {}).accounts[0].api_secret == "not-a-real-secret"


def test_a_changed_config_rolls_out_a_new_pod_template(base: Resources, tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    config = copy / "base" / "config.yaml"
    config.write_text(config.read_text().replace("interval_seconds: 60", "interval_seconds: 120"))
    changed = [d for d in yaml.safe_load_all(kustomize(copy / "base")) if d]
    (volume,) = [v for v in pod_template(changed)["spec"]["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == _config_map(changed)["metadata"]["name"]
    assert volume["configMap"]["name"] != _config_map(base)["metadata"]["name"]


# --- Service, NetworkPolicy, PodDisruptionBudget ----------------------------------------------


def test_service_selects_the_pod_and_its_metrics_port(base: Resources) -> None:
    service = find(base, "Service")
    assert matches(service["spec"]["selector"], pod_template(base)["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == container(base)["ports"][0]["name"]
    assert port["port"] == DEFAULT_PORT


def test_disruption_budget_covers_the_pod_without_blocking_drains(base: Resources) -> None:
    budget = find(base, "PodDisruptionBudget")["spec"]
    assert matches(budget["selector"]["matchLabels"], pod_template(base)["metadata"]["labels"])
    assert budget["maxUnavailable"] == 1


def test_network_policy_lets_scrapes_in_and_dns_and_https_out(base: Resources) -> None:
    policy = find(base, "NetworkPolicy")["spec"]
    assert matches(policy["podSelector"]["matchLabels"], pod_template(base)["metadata"]["labels"])
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": container(base)["ports"][0]["name"], "protocol": "TCP"}]
    out = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert out == {(53, "UDP"), (53, "TCP"), (443, "TCP")}


def test_operator_overlay_admits_scrapes_from_prometheus_pods_only(operator: Resources) -> None:
    (ingress,) = find(operator, "NetworkPolicy")["spec"]["ingress"]
    (peer,) = ingress["from"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


# --- call outcomes (components/call-outcomes) ---------------------------------------------------


def _config_data(resources: Resources) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(_config_map(resources)["data"]["config.yaml"])
    return data


def _push_port(resources: Resources) -> int:
    return int(_config_data(resources)["push"]["listen_address"].rpartition(":")[2])


def _ports_named(ports: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [p for p in ports if p["name"] == name]


def test_call_outcomes_config_is_valid_and_reads_the_push_token_from_its_mounted_secret(
    calls: Resources, tmp_path: Path
) -> None:
    data = _config_data(calls)
    token_path = Path(data["push"]["token_file"])
    volume = _mounts(calls)[str(token_path.parent)]
    assert volume["secret"]["secretName"] == PUSH_SECRET_NAME
    assert volume["secret"]["defaultMode"] == 0o440  # group 10188 (fsGroup) only, as the API's
    (account,) = data["accounts"]
    secret_path = Path(account["api_secret_file"])
    assert _mounts(calls)[str(secret_path.parent)]["secret"]["secretName"] == SECRET_NAME
    (tmp_path / "token").write_text("not-a-real-push-token\n")
    (tmp_path / "api_secret").write_text("not-a-real-secret\n")
    data["push"]["token_file"] = str(tmp_path / "token")
    account["api_secret_file"] = str(tmp_path / "api_secret")
    config = parse_config(data, {})
    assert config.calls.enabled
    assert config.push.enabled
    assert config.push.token == "not-a-real-push-token"


def test_call_outcomes_config_is_the_base_config_plus_calls_and_push(
    base: Resources, calls: Resources
) -> None:
    """The component replaces the config whole: the rest must stay what base/config.yaml says."""
    plain, with_calls = _config_data(base), _config_data(calls)
    assert set(with_calls) - set(plain) == {"calls", "push"}
    assert {k: v for k, v in with_calls.items() if k not in ("calls", "push")} == plain


def test_push_port_is_a_container_port_and_the_push_services_only_port(calls: Resources) -> None:
    (port,) = _ports_named(container(calls)["ports"], "push")
    assert port["containerPort"] == _push_port(calls)
    service = named(calls, "Service", PUSH_SERVICE)
    assert matches(service["spec"]["selector"], pod_template(calls)["metadata"]["labels"])
    assert service["spec"]["ports"] == [
        {"name": "push", "port": _push_port(calls), "targetPort": "push", "protocol": "TCP"}
    ]


def test_network_policy_admits_pushes_from_any_address(calls: Resources) -> None:
    ingress = find(calls, "NetworkPolicy")["spec"]["ingress"]
    (rule,) = [r for r in ingress if {"port": "push", "protocol": "TCP"} in r["ports"]]
    assert rule == {"ports": [{"port": "push", "protocol": "TCP"}]}  # no `from`: anyone


def test_call_outcomes_leave_the_metrics_port_as_before(
    operator: Resources, calls: Resources
) -> None:
    """Still scraped from Prometheus pods only, through the same Service and container port."""
    before, after = find(operator, "NetworkPolicy")["spec"], find(calls, "NetworkPolicy")["spec"]
    others = [r for r in after["ingress"] if all(p["port"] != "push" for p in r["ports"])]
    assert others == before["ingress"]
    assert after["egress"] == before["egress"]
    assert named(calls, "Service", "aivoice-exporter") == find(operator, "Service")
    (metrics,) = _ports_named(container(calls)["ports"], "http-metrics")
    assert metrics == container(operator)["ports"][0]


STATE_CLAIM = "aivoice-exporter-state"
STATE_PATH = "/var/lib/aivoice-exporter"


def test_call_outcomes_keep_the_call_state_on_a_small_claim_one_pod_holds(
    calls: Resources,
) -> None:
    claim = named(calls, "PersistentVolumeClaim", STATE_CLAIM)
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "64Mi"
    assert find(calls, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    volume = _mounts(calls)[STATE_PATH]
    assert volume["persistentVolumeClaim"] == {"claimName": STATE_CLAIM}
    (mount,) = [m for m in container(calls)["volumeMounts"] if m["mountPath"] == STATE_PATH]
    assert not mount.get("readOnly", False)
    assert pod_template(calls)["spec"]["securityContext"]["fsGroup"] == IMAGE_UID  # writable
    assert f"--storage.path={STATE_PATH}" in container(calls)["args"]


def test_the_exporter_accepts_the_call_outcomes_args(calls: Resources) -> None:
    args = parse_args(container(calls)["args"])
    assert args.storage_path == STATE_PATH
    assert args.config_file == "/etc/aivoice-exporter/config.yaml"


def test_without_call_outcomes_no_state_is_kept(operator: Resources) -> None:
    assert not [r for r in operator if r["kind"] == "PersistentVolumeClaim"]
    assert not any(arg.startswith("--storage.path") for arg in container(operator)["args"])


@pytest.mark.parametrize("build", [CALLS_BUILD, SHARDED_BUILD])
def test_service_monitor_finds_the_metrics_port_on_the_metrics_service_only(
    build: str, builds: dict[str, Resources]
) -> None:
    """The ServiceMonitor's selector matches the push Service (and the sharded StatefulSet's
    peers Service) too, which have no such port: every pod is scraped once."""
    resources = builds[build]
    monitor = find(resources, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    selected = [
        s
        for s in resources
        if s["kind"] == "Service"
        and matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    scraped = [
        s["metadata"]["name"]
        for s in selected
        if _ports_named(s["spec"]["ports"], endpoint["port"])
    ]
    assert scraped == ["aivoice-exporter"]


def _documented_ingress() -> dict[str, Any]:
    blocks = re.findall(r"^```yaml\n(.*?)^```", OPERATIONS.read_text(), re.M | re.S)
    documents = [yaml.safe_load(block) for block in blocks]
    (ingress,) = [d for d in documents if isinstance(d, dict) and d.get("kind") == "Ingress"]
    return ingress


def test_documented_ingress_is_valid_and_routes_only_the_push_path_over_tls(
    calls: Resources,
) -> None:
    ingress = _documented_ingress()
    result = validate(yaml.safe_dump(ingress))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^INFO .* passed for resource {_name(ingress)} against", result.stdout, re.M)
    spec = ingress["spec"]
    assert "defaultBackend" not in spec
    paths = [path for rule in spec["rules"] for path in rule["http"]["paths"]]
    push = {
        "name": PUSH_SERVICE,
        "port": {"name": named(calls, "Service", PUSH_SERVICE)["spec"]["ports"][0]["name"]},
    }
    assert paths == [
        {"path": "/push/call-record/", "pathType": "Prefix", "backend": {"service": push}}
    ]
    hosts = {rule["host"] for rule in spec["rules"]}
    assert hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}


# --- shards and replicas (components/sharded) ---------------------------------------------------

POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"
PEERS_SERVICE = "aivoice-exporter-peers"


def _flag(resources: Resources, name: str) -> str:
    (value,) = [a.partition("=")[2] for a in container(resources)["args"] if a.startswith(name)]
    return value


def _shards(resources: Resources) -> int:
    return int(_flag(resources, "--total-shards="))


def test_sharded_runs_two_replicas_of_every_shard_in_a_statefulset(sharded: Resources) -> None:
    assert not [r for r in sharded if r["kind"] == "Deployment"]
    spec = find(sharded, "StatefulSet")["spec"]
    assert _shards(sharded) == 3
    assert spec["replicas"] == 2 * _shards(sharded)
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}  # one pod at a time
    assert matches(spec["selector"]["matchLabels"], pod_template(sharded)["metadata"]["labels"])


def test_shard_is_the_pod_index_label_through_the_downward_api(sharded: Resources) -> None:
    (env,) = container(sharded)["env"]
    assert env["valueFrom"] == {"fieldRef": {"fieldPath": POD_INDEX}}
    assert _flag(sharded, "--shard=") == f"$({env['name']})"


def test_the_statefulset_names_its_pods_through_a_headless_peers_service(
    sharded: Resources,
) -> None:
    spec = find(sharded, "StatefulSet")["spec"]
    service = named(sharded, "Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert matches(service["spec"]["selector"], pod_template(sharded)["metadata"]["labels"])
    assert [p["name"] for p in service["spec"]["ports"]] == ["push"]


def test_push_peers_list_every_pod_by_its_stable_name_in_ordinal_order(
    sharded: Resources,
) -> None:
    statefulset = find(sharded, "StatefulSet")
    name, spec = statefulset["metadata"]["name"], statefulset["spec"]
    port = _push_port(sharded)
    expected = [f"http://{name}-{i}.{spec['serviceName']}:{port}" for i in range(spec["replicas"])]
    assert _config_data(sharded)["push"]["peers"] == expected


def test_sharded_config_is_the_call_outcomes_config_plus_push_peers(
    calls: Resources, sharded: Resources
) -> None:
    plain, with_peers = _config_data(calls), _config_data(sharded)
    peers = with_peers["push"].pop("peers")
    assert peers
    assert with_peers == plain


def test_every_pod_keeps_its_state_on_its_own_claim(sharded: Resources) -> None:
    assert not [r for r in sharded if r["kind"] == "PersistentVolumeClaim"]
    (claim,) = find(sharded, "StatefulSet")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "64Mi"
    (mount,) = [
        m for m in container(sharded)["volumeMounts"] if m["name"] == claim["metadata"]["name"]
    ]
    assert mount["mountPath"] == _flag(sharded, "--storage.path=") == STATE_PATH
    assert not mount.get("readOnly", False)
    volumes = {v["name"] for v in pod_template(sharded)["spec"]["volumes"]}
    assert claim["metadata"]["name"] not in volumes  # the template's claim, not a shared one


def test_disruption_budget_keeps_a_replica_of_every_shard_up(sharded: Resources) -> None:
    """Pods N and N + M serve one shard: with one pod of them all evicted at a time, every
    shard keeps the other."""
    budget = find(sharded, "PodDisruptionBudget")["spec"]
    assert matches(budget["selector"]["matchLabels"], pod_template(sharded)["metadata"]["labels"])
    assert budget["maxUnavailable"] == 1
    shards, pods = _shards(sharded), find(sharded, "StatefulSet")["spec"]["replicas"]
    for evicted in range(pods):
        assert {pod % shards for pod in range(pods) if pod != evicted} == set(range(shards))


def test_no_two_exporter_pods_share_a_node(sharded: Resources) -> None:
    affinity = pod_template(sharded)["spec"]["affinity"]["podAntiAffinity"]
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    labels = pod_template(sharded)["metadata"]["labels"]
    assert matches(term["labelSelector"]["matchLabels"], labels)


def test_sharded_pod_is_the_call_outcomes_pod_plus_shards_claims_and_anti_affinity(
    calls: Resources, sharded: Resources
) -> None:
    """statefulset.yaml writes the pod out again: it must stay the Deployment's."""
    before = json.loads(json.dumps(pod_template(calls)))
    after = json.loads(json.dumps(pod_template(sharded)))
    after["spec"].pop("affinity")
    box = after["spec"]["containers"][0]
    box.pop("env")
    shard_args = [a for a in box["args"] if a.startswith(("--shard=", "--total-shards="))]
    assert len(shard_args) == 2
    box["args"] = [a for a in box["args"] if a not in shard_args]
    # The state: a volume of the one claim before, the pod's own claim (no volume) after.
    before["spec"]["volumes"] = [v for v in before["spec"]["volumes"] if v["name"] != "state"]
    # Each its own config (the ConfigMap's name carries a hash of it).
    for pod in (before, after):
        for volume in pod["spec"]["volumes"]:
            if "configMap" in volume:
                volume["configMap"]["name"] = "aivoice-exporter-config"
    before_box = before["spec"]["containers"][0]
    before_box["volumeMounts"].sort(key=lambda m: m["name"])
    box["volumeMounts"].sort(key=lambda m: m["name"])
    before["spec"]["volumes"].sort(key=lambda v: v["name"])
    after["spec"]["volumes"].sort(key=lambda v: v["name"])
    before_box["args"].sort()
    box["args"].sort()
    assert after == before


def test_network_policy_lets_pushes_out_to_the_peers_only(
    calls: Resources, sharded: Resources
) -> None:
    before, after = find(calls, "NetworkPolicy")["spec"], find(sharded, "NetworkPolicy")["spec"]
    assert after["ingress"] == before["ingress"]
    (added,) = [rule for rule in after["egress"] if rule not in before["egress"]]
    assert added["ports"] == [{"port": "push", "protocol": "TCP"}]
    (peer,) = added["to"]
    assert matches(peer["podSelector"]["matchLabels"], pod_template(sharded)["metadata"]["labels"])


def _documented_patches(path: str) -> list[dict[str, Any]]:
    """The `patches:` blocks of docs/operations.md that patch `path` of the StatefulSet."""
    blocks = re.findall(r"^ *```yaml\n(.*?)^ *```", OPERATIONS.read_text(), re.M | re.S)
    documents = [yaml.safe_load(textwrap.dedent(block)) for block in blocks]
    return [
        d
        for d in documents
        if isinstance(d, dict) and any(path in p["patch"] for p in d.get("patches", []))
    ]


def _sharded_with(patches: dict[str, Any], tmp_path: Path) -> Resources:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    overlay = copy / "overlays" / "mine"  # kustomize takes relative paths only
    overlay.mkdir()
    kustomization = {"resources": [f"../../{SHARDED_BUILD}"], **patches}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    text = kustomize(overlay)
    result = validate(text)
    assert result.returncode == 0, result.stdout + result.stderr
    return [d for d in yaml.safe_load_all(text) if d]


def test_documented_shard_count_change_runs_two_replicas_of_four_shards(tmp_path: Path) -> None:
    (patches,) = _documented_patches("/spec/replicas")
    changed = _sharded_with(patches, tmp_path)
    assert _shards(changed) == 4
    assert find(changed, "StatefulSet")["spec"]["replicas"] == 2 * 4


def test_documented_preferred_anti_affinity_keeps_the_pods_apart_when_it_can(
    tmp_path: Path,
) -> None:
    (patches,) = _documented_patches("podAntiAffinity")
    affinity = pod_template(_sharded_with(patches, tmp_path))["spec"]["affinity"]
    (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in affinity["podAntiAffinity"]


def _knows_shard_flags() -> bool:
    try:
        parse_args(["--total-shards=1"])
    except SystemExit:
        return False
    return True


@pytest.mark.skipif(not _knows_shard_flags(), reason="the exporter has no --total-shards yet")
def test_the_exporter_accepts_the_sharded_args_and_config(
    sharded: Resources, tmp_path: Path
) -> None:
    for ordinal in range(find(sharded, "StatefulSet")["spec"]["replicas"]):
        args = [a.replace("$(SHARD)", str(ordinal)) for a in container(sharded)["args"]]
        parsed = parse_args(args)
        assert parsed.storage_path == STATE_PATH
    data = _config_data(sharded)
    (tmp_path / "token").write_text("not-a-real-push-token\n")
    (tmp_path / "api_secret").write_text("not-a-real-secret\n")
    data["push"]["token_file"] = str(tmp_path / "token")
    data["accounts"][0]["api_secret_file"] = str(tmp_path / "api_secret")
    config = parse_config(data, {})
    # Through asdict: push.peers comes with the shard flags, after this file was written.
    assert len(dataclasses.asdict(config.push)["peers"]) == 2 * _shards(sharded)


# --- what the Prometheus Operator and Grafana pick up -------------------------------------------


def test_service_monitor_scrapes_the_service_as_the_job_the_alerts_watch(
    operator: Resources,
) -> None:
    service, monitor = find(operator, "Service"), find(operator, "ServiceMonitor")
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    watched = re.findall(r'up\{job="([^"]+)"\}', RULE_FILES[1].read_text())
    (relabel,) = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert watched and set(watched) == {relabel["replacement"]}


def test_service_monitor_leaves_the_exporters_endpoint_label_as_it_is(
    operator: Resources,
) -> None:
    """The API series' `endpoint` (taskList, recordQuery), which the operator's own target
    label of that name would rename to exported_endpoint."""
    (endpoint,) = find(operator, "ServiceMonitor")["spec"]["endpoints"]
    assert {"action": "labeldrop", "regex": "endpoint"} in endpoint["relabelings"]


def test_prometheus_rule_groups_are_the_rule_files(operator: Resources) -> None:
    expected = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    assert find(operator, "PrometheusRule")["spec"]["groups"] == expected


def test_promtool_accepts_the_prometheus_rule_groups(operator: Resources, tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": find(operator, "PrometheusRule")["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_service_monitor_carry_the_label_kube_prometheus_stack_selects(
    operator: Resources,
) -> None:
    for kind in sorted(OPERATOR_KINDS):
        assert find(operator, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_dashboard_configmap_holds_the_dashboard_file_for_the_grafana_sidecar(
    operator: Resources,
) -> None:
    maps = [r for r in operator if r["kind"] == "ConfigMap"]
    (dashboard,) = [m for m in maps if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert dashboard["data"] == {DASHBOARD.name: DASHBOARD.read_text()}
