"""Every kind of bad tenant file gets a located Problem, never an exception."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tenancy.loader import TenantLoadError, load_tenants, parse_tenant_file, require_tenants
from tests.tenant_text import tenant_yaml


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def only_problem(path: Path):
    tenant, problems = parse_tenant_file(path)
    assert tenant is None
    assert len(problems) >= 1
    return problems


def test_valid_file_parses(tmp_path):
    tenant, problems = parse_tenant_file(write(tmp_path, "acme.yaml", tenant_yaml()))
    assert problems == []
    assert tenant.slug == "acme"


def test_malformed_yaml_reports_line(tmp_path):
    problems = only_problem(write(tmp_path, "acme.yaml", tenant_yaml() + "servicedesk: [unclosed\n"))
    assert problems[0].line is not None
    assert "invalid YAML" in problems[0].message


def test_empty_file(tmp_path):
    [problem] = only_problem(write(tmp_path, "acme.yaml", ""))
    assert "empty" in problem.message


def test_list_instead_of_mapping(tmp_path):
    [problem] = only_problem(write(tmp_path, "acme.yaml", "- slug: acme\n- tier: basic\n"))
    assert "expected a mapping" in problem.message and "list" in problem.message


def test_duplicate_keys(tmp_path):
    [problem] = only_problem(write(tmp_path, "acme.yaml", tenant_yaml() + "tier: basic\n"))
    assert "duplicate key" in problem.message
    assert problem.line == 10


def test_non_utf8_bytes(tmp_path):
    [problem] = only_problem(write(tmp_path, "acme.yaml", tenant_yaml().encode() + b"name2: \xff\xfe\n"))
    assert "UTF-8" in problem.message
    assert problem.line == 10


def test_alias_bomb_is_refused_quickly(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20)
    )
    [problem] = only_problem(write(tmp_path, "acme.yaml", bomb))
    assert "aliases are not allowed" in problem.message


def test_oversized_file(tmp_path):
    [problem] = only_problem(write(tmp_path, "acme.yaml", tenant_yaml() + "#" * (256 * 1024) + "\n"))
    assert "256 KiB" in problem.message


def test_wrong_type_is_located(tmp_path):
    text = tenant_yaml(extra="enhancement_preferences:\n  max_tokens: lots\n")
    [problem] = only_problem(write(tmp_path, "acme.yaml", text))
    assert problem.field == "enhancement_preferences.max_tokens"
    assert problem.line == 11


def test_out_of_range_value(tmp_path):
    text = tenant_yaml(extra="enhancement_preferences:\n  max_tokens: 9000\n")
    [problem] = only_problem(write(tmp_path, "acme.yaml", text))
    assert "4000" in problem.message and problem.line == 11


def test_http_url_is_rejected(tmp_path):
    text = tenant_yaml().replace("https://", "http://")
    [problem] = only_problem(write(tmp_path, "acme.yaml", text))
    assert problem.field == "servicedesk.url" and problem.line == 6 and "https" in problem.message


def test_slug_must_match_file_name(tmp_path):
    [problem] = only_problem(write(tmp_path, "acme-corp.yaml", tenant_yaml(slug="acme")))
    assert problem.field == "slug" and problem.line == 2 and "file name" in problem.message


def test_unknown_key_is_located(tmp_path):
    [problem] = only_problem(write(tmp_path, "acme.yaml", tenant_yaml(extra="teir: premium\n")))
    assert problem.field == "teir" and problem.line == 10 and "unknown key" in problem.message


def test_literal_api_key_names_the_storage_command(tmp_path):
    text = tenant_yaml().replace("  api_key_secret: acme-servicedesk-api-key\n", "  api_key: 9f8e7d6c5b4a\n")
    problems = only_problem(write(tmp_path, "acme.yaml", text))
    literal = [p for p in problems if p.field == "servicedesk.api_key"]
    assert literal and "pulumi config set --secret" in literal[0].message and literal[0].line == 7
    # the missing api_key_secret is still reported alongside
    assert any(p.field == "servicedesk.api_key_secret" for p in problems)


def test_literal_key_in_api_key_secret_is_rejected(tmp_path):
    text = tenant_yaml().replace("acme-servicedesk-api-key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc8a9f")
    [problem] = only_problem(write(tmp_path, "acme.yaml", text))
    assert "literal API key" in problem.message and "pulumi config set --secret" in problem.message


def test_every_error_in_a_file_is_reported(tmp_path):
    text = tenant_yaml(extra="teir: x\n").replace("tier: premium", "tier: gold").replace("https://", "http://")
    problems = only_problem(write(tmp_path, "acme.yaml", text))
    assert {p.field for p in problems} >= {"teir", "tier", "servicedesk.url"}


def test_duplicate_tenant_id_across_files(tmp_path):
    shared = str(uuid.uuid4())
    write(tmp_path, "acme.yaml", tenant_yaml("acme", tenant_id=shared))
    write(tmp_path, "globex.yaml", tenant_yaml("globex", tenant_id=shared))
    result = load_tenants(tenants_dir=tmp_path)
    [problem] = result.problems
    assert problem.field == "tenant_id" and "already used by" in problem.message


def test_duplicate_slug_across_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", "acme.yaml", tenant_yaml("acme"))
    second = write(tmp_path / "b", "acme.yaml", tenant_yaml("acme"))
    result = load_tenants(paths=[first, second])
    assert [p.field for p in result.problems] == ["slug"]


def test_require_tenants_raises_with_all_problems(tmp_path):
    write(tmp_path, "acme.yaml", "")
    write(tmp_path, "globex.yaml", "- x\n")
    with pytest.raises(TenantLoadError) as info:
        require_tenants(tmp_path)
    assert len(info.value.problems) == 2


def test_schema_json_is_the_one_other_file_the_folder_may_hold(tenants_dir):
    (tenants_dir / "schema.json").write_text("{}")
    assert load_tenants(tenants_dir=tenants_dir).ok
    (tenants_dir / "README.md").write_text("notes")
    result = load_tenants(tenants_dir=tenants_dir)
    assert not result.ok and result.files_checked == 2
    assert [Path(p.file).name for p in result.problems] == ["README.md"]


def test_scalar_alias_is_refused(tmp_path):
    text = tenant_yaml().replace("name: Acme MSP", "name: &n Acme MSP") + "x: *n\n"
    [problem] = only_problem(write(tmp_path, "acme.yaml", text))
    assert "aliases are not allowed" in problem.message


def test_fast_and_locating_parsers_agree_on_valid_files(repo_root):
    from tenancy.loader import _parse_with_locations, _valid_tenant_fast

    for path in (repo_root / "tenants").glob("*.yaml"):
        fast = _valid_tenant_fast(path.read_bytes(), path.stem)
        located, problems = _parse_with_locations(path.read_bytes(), str(path), path.stem)
        assert problems == [] and fast == located


def test_fast_parser_declines_every_invalid_file(tmp_path):
    from tenancy.loader import _valid_tenant_fast

    for text in (tenant_yaml() + "tier: basic\n", tenant_yaml(extra="teir: x\n"), "- a\n", "",
                 tenant_yaml().replace("https", "http")):
        assert _valid_tenant_fast(text.encode(), "acme") is None
    assert _valid_tenant_fast(tenant_yaml().encode(), "other-name") is None


def test_everything_in_the_tenants_folder_is_a_tenant_file_or_an_error(tenants_dir):
    from tenancy.loader import load_tenants

    (tenants_dir / "eu").mkdir()
    (tenants_dir / "eu" / "initech.yaml").write_text("slug: initech\n")
    (tenants_dir / "dangling.yaml").symlink_to(tenants_dir / "nowhere.yaml")
    (tenants_dir / "notes.txt").write_text("todo\n")
    (tenants_dir / ".gitkeep").write_text("")

    result = load_tenants(tenants_dir=tenants_dir)

    messages = {Path(p.file).name: p.message for p in result.problems}
    assert set(messages) == {"eu", "dangling.yaml", "notes.txt"}
    assert "subfolders are not read" in messages["eu"] and "symlinks are not read" in messages["dangling.yaml"]
    assert sorted(t.tenant.slug for t in result.tenants) == ["acme", "globex"]


def test_a_yml_file_is_a_tenant_file_like_yaml(tenants_dir):
    from tenancy.loader import load_tenants

    (tenants_dir / "globex.yaml").rename(tenants_dir / "globex.yml")

    result = load_tenants(tenants_dir=tenants_dir)

    assert result.ok and sorted(t.tenant.slug for t in result.tenants) == ["acme", "globex"]


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_a_missing_or_empty_folder_refuses_to_deploy_instead_of_removing_every_tenant(tmp_path, folder):
    from tenancy.loader import TenantLoadError, require_tenants

    target = tmp_path / folder
    if folder == "empty":
        target.mkdir()

    with pytest.raises(TenantLoadError) as raised:
        require_tenants(target)

    assert ("no such folder" if folder == "missing" else "no tenant files") in str(raised.value)
    if folder == "empty":
        assert require_tenants(target, allow_none=True) == []


def test_a_misspelled_key_is_an_unknown_key_with_a_suggestion_not_a_pasted_secret(tmp_path):
    text = tenant_yaml().replace("  api_key_secret:", "  api_key_secret: acme-servicedesk-api-key\n  api_key_secrets:")
    problems = only_problem(write(tmp_path, "acme.yaml", text))

    [problem] = [p for p in problems if p.field == "servicedesk.api_key_secrets"]
    assert "unknown key (did you mean 'api_key_secret'?" in problem.message and problem.line == 8


@pytest.mark.parametrize("field,value,words", [
    ("slug", "Acme_Corp", "lowercase letters, digits or '-'"),
    ("llm_model", "gpt4", "<provider>/<model>"),
])
def test_pattern_errors_are_said_in_words_not_regular_expressions(tmp_path, field, value, words):
    text = tenant_yaml()
    if field == "slug":
        text = text.replace("slug: acme", f"slug: {value}")
    else:
        text += f"enhancement_preferences:\n  llm_model: {value}\n"
    problems = only_problem(write(tmp_path, "acme.yaml", text))

    messages = " ".join(p.message for p in problems)
    assert words in messages and "^[" not in messages and problems[0].line is not None
