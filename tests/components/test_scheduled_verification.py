"""The scheduled verification job holds only what it uses: its own namespace under PSA restricted, its own
ServiceAccount with no token and no Role, egress to DNS, the database, the Pushgateway and the app only, a
digest-pinned image, and its secrets as read-only files. The platform program runs under the mock runtime."""

from __future__ import annotations

import pytest

from components.scheduled_verification import SECRETS_MOUNT, VerificationSettings
from components.settings import SettingsError
from fleet.mock_runtime import Secret, masked
from tests.program_runs import run_stack, stack_config

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"registry.example.com/tenant-onboarding@{DIGEST}"
SCHEDULED = {"verificationSchedule": "*/30 * * * *", "verificationImage": IMAGE,
             "pushgatewayUrl": "http://pushgateway.monitoring:9091", "verificationDatabaseCidrs": "10.0.12.0/24"}


def settings(**changes) -> VerificationSettings:
    values = {"schedule": "*/30 * * * *", "image": IMAGE, "pushgateway_url": "http://pushgateway.monitoring:9091",
              "database_cidrs": ("10.0.12.0/24",), **changes}
    return VerificationSettings(**values)


@pytest.mark.parametrize("image", ["registry.example.com/tenant-onboarding:abc123",
                                   "registry.example.com/tenant-onboarding:latest",
                                   "registry.example.com/tenant-onboarding@sha256:abc",
                                   "registry.example.com/tenant-onboarding"])
def test_an_image_without_a_digest_is_refused(image):
    with pytest.raises(SettingsError, match="pinned by digest"):
        settings(image=image)


def test_an_image_with_a_tag_and_a_digest_is_accepted():
    assert settings(image=f"ghcr.io/acme/tenant-onboarding:v1.2@{DIGEST}").image.endswith(DIGEST)


@pytest.mark.parametrize("change, message", [
    ({"pushgateway_url": "https://pushgateway.example.com"}, "in-cluster service"),
    ({"pushgateway_url": "http://pushgateway:9091"}, "in-cluster service"),
    ({"database_cidrs": ()}, "verificationDatabaseCidrs is required"),
    ({"database_cidrs": ("0.0.0.0/0",)}, "every address"),
    ({"database_cidrs": ("db.internal",)}, "not a CIDR"),
])
def test_egress_settings_that_would_open_the_policy_are_refused(change, message):
    with pytest.raises(SettingsError, match=message):
        settings(**change)


def test_a_tag_only_image_stops_the_platform_program_before_any_resource(repo_root, tenants_dir):
    from fleet.mock_runtime import ProgramError

    config, secret_keys = stack_config(repo_root, tenants_dir, **{**SCHEDULED, "verificationImage": "r.io/x/y:1"})
    with pytest.raises(ProgramError, match="pinned by digest"):
        run_stack(repo_root, "dev", config, secret_keys)


@pytest.fixture
def job(repo_root, tenants_dir):
    """The prod environment's platform stack (its webhook URL is https on 443) with the job scheduled."""
    config, secret_keys = stack_config(repo_root, tenants_dir, env="prod", **SCHEDULED)
    run = run_stack(repo_root, "prod", config, secret_keys)
    by_type = {}
    for resource in run.resources:
        if resource.parent_name == "verification" or resource.name.startswith("verification-"):
            by_type.setdefault(resource.type.split(":")[-1], []).append(resource)
    return run, by_type


def test_the_job_runs_in_its_own_restricted_namespace(job):
    _run, objects = job
    [namespace] = objects["Namespace"]
    labels = namespace.inputs["metadata"]["labels"]
    assert namespace.inputs["metadata"]["name"] == "tenant-verification"
    assert all(labels[f"pod-security.kubernetes.io/{m}"] == "restricted" for m in ("enforce", "audit", "warn"))
    for kind in ("ServiceAccount", "NetworkPolicy", "Secret", "CronJob"):
        assert [o.inputs["metadata"]["namespace"] for o in objects[kind]] == ["tenant-verification"], kind


def test_the_job_has_its_own_account_with_no_token_and_no_role(job):
    run, objects = job
    [account] = objects["ServiceAccount"]
    [cron] = objects["CronJob"]
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert account.inputs["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account.inputs["metadata"]["name"] == "tenant-verification"
    assert pod["automountServiceAccountToken"] is False
    # The checks never call the Kubernetes API: nothing may grant the account anything.
    assert not [r for r in run.resources if r.type.split(":")[-1] in ("Role", "RoleBinding", "ClusterRole",
                                                                       "ClusterRoleBinding")]


def test_the_job_runs_non_root_under_psa_restricted_with_a_pinned_image(job):
    _run, objects = job
    [cron] = objects["CronJob"]
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    context = container["securityContext"]
    assert container["image"] == IMAGE
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]} and context["runAsNonRoot"] is True
    assert not any(k in pod for k in ("hostNetwork", "hostPID", "hostIPC"))


def test_the_secrets_are_read_only_files_from_the_jobs_own_secret(job):
    _run, objects = job
    [secret] = objects["Secret"]
    [cron] = objects["CronJob"]
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert isinstance(secret.inputs["stringData"], Secret)
    assert set(secret.inputs["stringData"].value) == {"database-url", "app-database-url", "fernet-key"}
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == SECRETS_MOUNT]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == secret.inputs["metadata"]["name"]
    assert int(volume["secret"]["defaultMode"]) & 0o007 == 0  # not world-readable
    # No secret in the environment (every child and /proc/<pid>/environ would see it).
    assert "envFrom" not in container
    assert not [e for e in container["env"] if "valueFrom" in e or isinstance(e.get("value"), Secret)]
    command = container["command"]
    assert command[command.index("--secrets-dir") + 1] == SECRETS_MOUNT


def test_the_job_may_reach_only_dns_the_database_the_pushgateway_and_the_app(job):
    _run, objects = job
    [policy] = objects["NetworkPolicy"]
    [cron] = objects["CronJob"]
    spec = policy.inputs["spec"]
    pod_labels = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()  # it applies to the job's pods
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"} and spec["ingress"] == []
    allowed = set()
    for rule in spec["egress"]:
        assert rule.get("to") and rule.get("ports"), rule  # an empty `to` or `ports` would allow everything
        for peer in rule["to"]:
            if "ipBlock" in peer:
                target = peer["ipBlock"]["cidr"]
                assert "except" not in peer["ipBlock"]
            else:
                target = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            allowed |= {(target, int(p["port"]), p["protocol"]) for p in rule["ports"]}
    assert allowed == {("kube-system", 53, "UDP"), ("kube-system", 53, "TCP"), ("10.0.12.0/24", 5432, "TCP"),
                       ("monitoring", 9091, "TCP"), ("ingress-nginx", 443, "TCP")}


def test_the_rendered_objects_are_valid_kubernetes(job):
    import kubernetes_validate

    _run, objects = job
    api = {"Namespace": "v1", "ServiceAccount": "v1", "Secret": "v1", "NetworkPolicy": "networking.k8s.io/v1",
           "CronJob": "batch/v1"}
    for kind, version in api.items():
        for resource in objects[kind]:
            body = {"apiVersion": version, "kind": kind, **masked(resource.inputs)}
            if kind == "Secret":
                body["stringData"] = {k: "x" for k in resource.inputs["stringData"].value}
            kubernetes_validate.validate(body, "1.33", strict=True)


def test_verify_reads_its_credentials_from_the_mounted_files(tmp_path, tenants_dir):
    """The job's command with the Secret's files: the URL comes from the file (its host is probed), and its password
    is never shown."""
    from typer.testing import CliRunner

    from tenantctl.cli import app

    mounted = tmp_path / "secrets"
    mounted.mkdir()
    (mounted / "app-database-url").write_text("postgresql://app_user:file-pw-123@127.0.0.1:1/app\n")
    result = CliRunner().invoke(app, ["verify", "acme", "--tenants-dir", str(tenants_dir), "--checks", "rls",
                                      "--secrets-dir", str(mounted), "--json"], env={"APP_DATABASE_URL": None})
    assert "127.0.0.1:1" in result.output, result.output
    assert "file-pw-123" not in result.output
