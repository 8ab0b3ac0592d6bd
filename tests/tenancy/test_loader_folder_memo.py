"""A folder loaded again unchanged is not read again; any change to it is seen (tenancy.loader's folder memo)."""

from __future__ import annotations

import os
import uuid

import pytest

from tenancy import loader
from tenancy.loader import TenantLoadError, load_tenants, require_tenants
from tests.tenant_text import tenant_yaml


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for slug in ("acme", "globex"):
        (tenants / f"{slug}.yaml").write_text(tenant_yaml(slug))
    return tenants


@pytest.fixture
def reads(monkeypatch):
    """The files the loader really read (parsed or listed), in order."""
    seen: list[str] = []
    real_files, real_parse = loader.tenant_files, loader._read_and_parse

    def tenant_files(folder):
        seen.append(f"list {folder.name}")
        return real_files(folder)

    def read_and_parse(path, name):
        seen.append(path.name)
        return real_parse(path, name)

    monkeypatch.setattr(loader, "tenant_files", tenant_files)
    monkeypatch.setattr(loader, "_read_and_parse", read_and_parse)
    return seen


def test_an_unchanged_folder_is_not_listed_or_read_again(folder, reads):
    first = require_tenants(folder)
    reads.clear()
    assert require_tenants(folder) == first
    assert reads == []


def test_a_file_changed_in_place_is_read_again(folder, reads):
    require_tenants(folder)
    path = folder / "acme.yaml"
    path.write_text(tenant_yaml("acme", tier="basic"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    reads.clear()
    tenants = {t.slug: t for t in require_tenants(folder)}
    assert tenants["acme"].tier.value == "basic"
    assert "acme.yaml" in reads


def test_a_file_replaced_with_the_same_size_and_time_is_read_again(folder):
    require_tenants(folder)
    path = folder / "acme.yaml"
    stat = path.stat()
    same_size = tenant_yaml("acme", tenant_id=str(uuid.uuid4()))
    assert len(same_size) == stat.st_size
    replacement = folder / ".acme.new"
    replacement.write_text(same_size)
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)  # a new inode: what an editor's or git's atomic write leaves
    ids = {t.slug: str(t.tenant_id) for t in require_tenants(folder)}
    assert ids["acme"] == same_size.split("\n", 1)[0].split(": ")[1]


def test_a_file_added_or_removed_is_seen(folder):
    require_tenants(folder)
    (folder / "initech.yaml").write_text(tenant_yaml("initech"))
    assert {t.slug for t in require_tenants(folder)} == {"acme", "globex", "initech"}
    (folder / "globex.yaml").unlink()
    assert {t.slug for t in require_tenants(folder)} == {"acme", "initech"}


def test_a_bad_file_is_reported_every_time_and_the_memo_holds_no_shared_lists(folder):
    (folder / "broken.yaml").write_text("slug: [\n")
    for _ in range(2):
        with pytest.raises(TenantLoadError) as raised:
            require_tenants(folder)
        assert [p.file for p in raised.value.problems] == ["tenants/broken.yaml"]
    result = load_tenants(tenants_dir=folder)
    result.problems.clear()
    result.tenants.clear()
    again = load_tenants(tenants_dir=folder)
    assert again.problems and len(again.tenants) == 2


def test_display_names_are_relative_to_the_working_directory_and_follow_it(folder, tmp_path, monkeypatch):
    (folder / "broken.yaml").write_text("slug: [\n")
    assert [p.file for p in load_tenants(tenants_dir=folder).problems] == ["tenants/broken.yaml"]
    monkeypatch.chdir(folder)
    assert [p.file for p in load_tenants(tenants_dir=folder).problems] == ["broken.yaml"]
