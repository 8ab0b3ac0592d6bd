"""`tenantctl plan --changed-since` (the PR preview's plan) says what a suspension and a rotation will do."""

from __future__ import annotations

from tests.tenantctl.test_cli_plan import project, tenantctl  # noqa: F401 (fixture)


def test_the_plan_of_a_suspension_and_a_rotation_says_what_up_will_do(project):  # noqa: F811
    acme = project / "tenants" / "acme.yaml"
    acme.write_text(acme.read_text().replace("tier: premium\n", "tier: premium\nstate: suspended\n"))
    rotated = tenantctl(project, "rotate-signing-secret", "globex", "--env", "prod")
    assert rotated.returncode == 0, rotated.stderr

    result = tenantctl(project, "plan", "--changed-since", "main")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "      state: 'active' -> 'suspended'" in lines
    assert any(line.startswith("      => suspend: the tenant_configs row is marked suspended") and
               "from 20 pods to 0" in line for line in lines), result.stdout
    assert any(line.startswith("      => signing-secret rotation: version 2 is created beside version 1")
               for line in lines), result.stdout
