"""The Kubernetes manifests (deploy/kubernetes/): rendered as `kubectl apply -k` would, every
object is valid against Kubernetes' own OpenAPI schemas, and the properties that keep a
cluster safe hold: workers reach only DNS and the database, API Pods run without privileges
and are probed, the autoscaling example scales the workers on a metric execbox exports."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = ROOT / "deploy" / "kubernetes"
CLUSTER = DEPLOY / "cluster"
COMPONENTS = ("postgres", "autoscaling")
# appArmorProfile in a securityContext is a field from 1.30 on.
KUBERNETES_VERSION = "1.30.0"
NATIVE_CAPABILITIES = {
    "SYS_ADMIN", "SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "MKNOD",
    "SYS_PTRACE",
}  # fmt: skip

Manifest = dict[str, Any]


def _kustomize() -> list[str] | None:
    if path := shutil.which("kustomize"):
        return [path, "build"]
    if path := shutil.which("kubectl"):
        return [path, "kustomize"]
    return None


@contextmanager
def _overlay(components: tuple[str, ...]) -> Iterator[Path]:
    """A kustomization of the base plus ``components``, as a user's overlay would say."""
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.relpath(CLUSTER, tmp)
        overlay = {
            "resources": [base],
            "components": [f"{base}/components/{c}" for c in components],
        }
        (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
        yield Path(tmp)


def render_with_kustomize(components: tuple[str, ...]) -> list[Manifest]:
    command = _kustomize()
    assert command is not None
    with _overlay(components) as overlay:
        done = subprocess.run([*command, str(overlay)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomization(directory: Path, kind: str) -> Manifest:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert spec["kind"] == kind
    unknown = set(spec) - {"apiVersion", "kind", "resources", "patches"}
    assert not unknown, f"{directory}: the fallback render cannot apply {sorted(unknown)}"
    return spec


def _merge(base: Any, patch: Any) -> Any:
    """A strategic-merge patch for what these manifests patch: maps merge, lists replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in patch.items()}}
    return patch


def render_without_kustomize(components: tuple[str, ...]) -> list[Manifest]:
    """The render where no kustomize binary is installed: each listed resource, then each
    component's resources and patches (matched by kind and name)."""
    objects = [
        doc
        for r in _kustomization(CLUSTER, "Kustomization")["resources"]
        for doc in _load(CLUSTER / r)
    ]
    for name in components:
        directory = CLUSTER / "components" / name
        spec = _kustomization(directory, "Component")
        objects += [doc for r in spec.get("resources", []) for doc in _load(directory / r)]
        for patch in (doc for p in spec.get("patches", []) for doc in _load(directory / p["path"])):
            [index] = [
                i for i, o in enumerate(objects)
                if (o["kind"], o["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
            ]  # fmt: skip
            objects[index] = _merge(objects[index], patch)
    return objects


def render(components: tuple[str, ...] = ()) -> list[Manifest]:
    if _kustomize() is None:
        return render_without_kustomize(components)
    return render_with_kustomize(components)


RENDERS = {
    "cluster": lambda: render(),
    "cluster+postgres+autoscaling": lambda: render(COMPONENTS),
    "execbox-native.yaml": lambda: _load(DEPLOY / "execbox-native.yaml"),
}


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(objects: list[Manifest], name: str) -> Manifest:
    return one(objects, "Deployment", name)["spec"]["template"]["spec"]


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        if (
            expression["operator"] != "In"
            or labels.get(expression["key"]) not in expression["values"]
        ):
            return False
    return True


def pod_labels(objects: list[Manifest]) -> list[dict[str, str]]:
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    return [w["spec"]["template"]["metadata"]["labels"] for w in workloads]


@pytest.mark.parametrize("name", RENDERS)
def test_every_object_is_valid_kubernetes(name: str) -> None:
    objects = RENDERS[name]()
    assert len(objects) >= 2
    problems = []
    for manifest in objects:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = "/".join(str(p) for p in err.path)
            problems.append(
                f"{manifest['kind']}/{manifest['metadata']['name']} at {where}: {err.message}"
            )
    assert not problems, "\n".join(problems)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), names


def test_the_validator_refuses_a_misspelt_field() -> None:
    """The check above can fail: a field Kubernetes does not know is an error."""
    api = one(render(), "Deployment", "execbox-api")
    api["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(_kustomize() is None, reason="no kustomize (nor kubectl) installed")
@pytest.mark.parametrize("components", [(), COMPONENTS])
def test_the_fallback_render_is_kustomize_s(components: tuple[str, ...]) -> None:
    def key(o: Manifest) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    kustomized = sorted(render_with_kustomize(components), key=key)
    assert kustomized == sorted(render_without_kustomize(components), key=key)


@pytest.mark.parametrize("components", [(), COMPONENTS])
def test_workers_reach_only_dns_and_the_database(components: tuple[str, ...]) -> None:
    objects = render(components)
    policy = one(objects, "NetworkPolicy", "execbox-worker")["spec"]
    worker_labels = one(objects, "Deployment", "execbox-worker")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert selects(policy["podSelector"], worker_labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy.get("ingress", []) == []
    allowed = set()
    for rule in policy["egress"]:
        ports = {(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]}
        assert ports, "an egress rule without ports opens every port"
        allowed |= ports
        if ports <= {("UDP", 53), ("TCP", 53)}:
            [peer] = rule["to"]
            assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        else:
            assert ports == {("TCP", 5432)}
            if "postgres" in components:
                [peer] = rule["to"]
                database = one(objects, "StatefulSet", "execbox-postgres")
                assert selects(
                    peer["podSelector"], database["spec"]["template"]["metadata"]["labels"]
                )
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 5432)}
    # No other policy opens the workers up again.
    others = [o for o in objects if o["kind"] == "NetworkPolicy" and o is not policy]
    assert not [
        o
        for o in others
        if selects(o["spec"]["podSelector"], worker_labels)
        and o["metadata"]["name"] != "execbox-worker"
    ]


def test_api_pods_run_unprivileged_probed_and_bounded() -> None:
    objects = render()
    pod = pod_spec(objects, "execbox-api")
    [container] = pod["containers"]
    assert container["command"][-2:] == ["serve", "--no-worker"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert "http" in ports
    assert set(container["resources"]) == {"requests", "limits"}
    # The Service reaches these Pods, and the API's policy lets traffic in on their port.
    labels = one(objects, "Deployment", "execbox-api")["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service", "execbox")["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == "http"
    policy = one(objects, "NetworkPolicy", "execbox-api")["spec"]
    assert selects(policy["podSelector"], labels)
    assert {"protocol": "TCP", "port": ports["http"]} in policy["ingress"][0]["ports"]
    # API Pods send the callbacks (workers cannot): their egress is not restricted.
    assert "Egress" not in policy["policyTypes"]


def test_workers_run_sandboxes_as_the_single_node_manifest_does() -> None:
    objects = render()
    native = pod_spec(_load(DEPLOY / "execbox-native.yaml"), "execbox")["containers"][0]
    [container] = pod_spec(objects, "execbox-worker")["containers"]
    assert container["command"][-1] == "worker"
    assert set(container["securityContext"]["capabilities"]["add"]) == NATIVE_CAPABILITIES
    assert container["securityContext"] == native["securityContext"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert "ports" not in container  # a worker serves nothing
    for name in ("execbox-api", "execbox-worker"):
        [env] = [
            e
            for e in pod_spec(objects, name)["containers"][0]["env"]
            if e["name"] == "EXECBOX_DATABASE_URL"
        ]
        secret = env["valueFrom"]["secretKeyRef"]
        assert secret["key"] in one(objects, "Secret", secret["name"])["stringData"]


def test_the_postgres_component_points_execbox_at_itself() -> None:
    objects = render(COMPONENTS)
    url = one(objects, "Secret", "execbox-database")["stringData"]["url"]
    service = one(objects, "Service", "execbox-postgres")
    assert f"@{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/" in url
    policy = one(objects, "NetworkPolicy", "execbox-postgres")["spec"]
    allowed = [
        labels
        for labels in pod_labels(objects)
        if selects(policy["ingress"][0]["from"][0]["podSelector"], labels)
    ]
    assert sorted(labels["app.kubernetes.io/component"] for labels in allowed) == ["api", "worker"]


def test_every_policy_selects_some_pods() -> None:
    objects = render(COMPONENTS)
    labels = pod_labels(objects)
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        assert any(selects(policy["spec"]["podSelector"], pod) for pod in labels), policy[
            "metadata"
        ]["name"]


def test_autoscaling_scales_workers_on_a_metric_execbox_exports() -> None:
    objects = render(COMPONENTS)
    hpa = one(objects, "HorizontalPodAutoscaler", "execbox-worker")["spec"]
    target = hpa["scaleTargetRef"]
    assert (
        one(objects, target["kind"], target["name"])["spec"]["template"]["spec"]["containers"][0][
            "command"
        ][-1]
        == "worker"
    )
    [metric] = hpa["metrics"]
    name = metric["external"]["metric"]["name"]
    assert name == "execbox_cluster_queue_depth"
    assert f'"{name}"' in (ROOT / "src/execbox/executor/metrics.py").read_text()
    # Only where asked: without its adapter the autoscaler would just report errors.
    assert not [o for o in render() if o["kind"] == "HorizontalPodAutoscaler"]
