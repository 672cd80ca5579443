"""The plugin catalog under registry/plugins/: it validates, covers every built-in and first-party
plugin, agrees with the code, and rejects bad entries with messages that name the key."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grpo_zoo.plugins import BUILTIN_MODULES, implemented_hooks, installed_entry_points, load_plugin
from grpo_zoo.registry import HOOKS, Entry, default_root, load_catalog

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def first_party_folders() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def plugin_project(folder: Path) -> tuple[str, list[str]]:
    """(distribution name, entry point names) from a plugin folder's pyproject.toml."""
    data = tomllib.loads((folder / "pyproject.toml").read_text())
    eps = data["project"].get("entry-points", {}).get("grpo_zoo", {})
    return data["project"]["name"], sorted(eps)


@pytest.fixture(scope="module")
def catalog() -> dict[str, Entry]:
    return {e.name: e for e in load_catalog()}


def test_catalog_validates(catalog):
    assert default_root() == ROOT / "registry" / "plugins"
    assert catalog, "the catalog is empty"
    for path in sorted(default_root().glob("*.toml")):
        assert path.stem in catalog, f"{path.name}: the file name must be the entry's name"
    for entry in catalog.values():
        assert set(entry.hooks) <= set(HOOKS) and entry.hooks == sorted(entry.hooks)
        assert entry.summary.strip()


def test_every_builtin_has_an_entry_that_matches_the_code(catalog):
    for name, module in BUILTIN_MODULES.items():
        assert name in catalog, f"registry/plugins/{name}.toml is missing"
        entry = catalog[name]
        assert entry.kind == "builtin" and entry.distribution == "grpo-zoo"
        assert entry.hooks == implemented_hooks(load_plugin(name)), f"{name}: hooks differ from {module}"


@pytest.mark.parametrize("folder", first_party_folders(), ids=lambda p: p.name)
def test_every_first_party_plugin_has_an_entry(catalog, folder):
    dist, ep_names = plugin_project(folder)
    assert folder.name in ep_names, f"plugins/{folder.name}: no grpo_zoo entry point named {folder.name!r} ({ep_names})"
    assert dist == "grpo-zoo-" + folder.name.replace("_", "-")
    for ep_name in ep_names:  # a distribution may ship more than one plugin: each is listed
        assert ep_name in catalog, f"registry/plugins/{ep_name}.toml is missing for plugins/{folder.name}"
        entry = catalog[ep_name]
        assert entry.kind == "first-party" and entry.distribution == dist
        if ep_name in installed_entry_points():  # installed here: the catalog's hooks are the code's hooks
            assert entry.hooks == implemented_hooks(load_plugin(ep_name)), f"{ep_name}: catalog hooks differ"


def test_builtin_and_first_party_kinds_have_code_here(catalog):
    shipped = {ep for f in first_party_folders() for ep in plugin_project(f)[1]}
    for entry in catalog.values():
        if entry.kind == "builtin":
            assert entry.name in BUILTIN_MODULES
        if entry.kind == "first-party":
            assert entry.name in shipped, f"{entry.name}: first-party entry without code under plugins/"


GOOD = """
name = "demo"
distribution = "grpo-zoo-demo"
kind = "third-party"
summary = "a demo"
hooks = ["zoo_group_center"]
papers = [{ title = "A paper", arxiv = "2601.22582" }]
homepage = "https://example.org/grpo-zoo-demo"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / f"{name}.toml").write_text(text)
    return tmp_path


def test_good_entry_loads(tmp_path):
    (entry,) = load_catalog(write(tmp_path, "demo", GOOD))
    assert entry.papers[0].arxiv == "2601.22582" and entry.min_core_version == "0.1.0"
    versioned = GOOD.replace("2601.22582", "2507.18071v2")
    assert load_catalog(write(tmp_path, "demo", versioned))[0].papers[0].arxiv == "2507.18071v2"


@pytest.mark.parametrize(
    "change,key,words",
    [
        (("zoo_group_center", "zoo_group_centre"), "hooks", "unknown hook(s) ['zoo_group_centre']"),
        (("2601.22582", "2601.225"), "papers.0.arxiv", "not an arXiv id: '2601.225'"),
        (("2601.22582", "arXiv:2601.22582"), "papers.0.arxiv", "not an arXiv id"),
        (('summary = "a demo"', 'summary = "a demo"\nauthor = "me"'), "author", "Extra inputs are not permitted"),
        (('title = "A paper",', 'title = "A paper", url = "x",'), "papers.0.url", "Extra inputs are not permitted"),
        (('kind = "third-party"', 'kind = "vendor"'), "kind", "'first-party'"),
        (('summary = "a demo"\n', ""), "summary", "Field required"),
    ],
)
def test_bad_entries_are_rejected_naming_the_key(tmp_path, change, key, words):
    old, new = change
    assert old in GOOD
    write(tmp_path, "demo", GOOD.replace(old, new))
    with pytest.raises(ValueError) as err:
        load_catalog(tmp_path)
    msg = str(err.value)
    assert "demo.toml" in msg and f"  {key}: " in msg and words in msg, msg


def test_duplicate_names_and_broken_toml_are_rejected(tmp_path):
    write(tmp_path, "demo", GOOD)
    write(tmp_path, "demo2", GOOD)
    # one file per name: an entry named after another file is caught by the file-name rule
    with pytest.raises(ValueError, match="demo2.toml: name 'demo' differs from the file name"):
        load_catalog(tmp_path)
    (tmp_path / "demo2.toml").write_text("name = \n")
    with pytest.raises(ValueError, match="demo2.toml: invalid TOML"):
        load_catalog(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_catalog(tmp_path / "nope")


def test_catalog_location_env_and_error(tmp_path, monkeypatch):
    from grpo_zoo import registry

    (tmp_path / "mine.toml").write_text((default_root() / "mc_grpo.toml").read_text().replace('"mc_grpo"', '"mine"', 1))
    monkeypatch.setenv("GRPO_ZOO_REGISTRY", str(tmp_path))
    assert [e.name for e in load_catalog()] == ["mine"]  # the variable wins over the checkout
    monkeypatch.setattr(registry, "candidate_roots", lambda: [tmp_path / "nowhere", tmp_path / "elsewhere"])
    with pytest.raises(FileNotFoundError, match=r"nowhere.*elsewhere.*--root PATH or set GRPO_ZOO_REGISTRY"):
        load_catalog()
