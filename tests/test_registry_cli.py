"""`grpo-zoo registry list/check` on bad catalogs: one-line errors naming file and key, never a traceback,
and no bad entry accepted silently."""
from __future__ import annotations

import pytest

from grpo_zoo import cli

GOOD = '''name = "{name}"
distribution = "{dist}"
kind = "{kind}"
summary = "s"
hooks = ["zoo_config_model"]
{extra}
'''


def _write(root, stem, name=None, dist="grpo-zoo-x", kind="first-party", extra=""):
    (root / f"{stem}.toml").write_text(GOOD.format(name=name or stem, dist=dist, kind=kind, extra=extra))


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: _write(r, "a", extra='papers = [{ title = "t", arxiv = "12.3" }]'), r"a.toml: .*papers.0.arxiv.*not an arXiv id"),
        (lambda r: (r / "b.toml").write_text('name = "b"\nkind = "first-party"\nhooks = []\ndistribution = "d"\n'), r"b.toml: .*summary: Field required"),
        (lambda r: _write(r, "c", kind="plugin"), r"c.toml: .*kind"),
        (lambda r: (r / "d.toml").write_text("name = [oops"), r"d.toml: invalid TOML"),
        (lambda r: _write(r, "e", extra='min_core_version = "banana"'), r"e.toml: .*min_core_version.*not a version: 'banana'"),
        (lambda r: _write(r, "f", name="other"), r"f.toml: name 'other' differs from the file name"),
        (lambda r: _write(r, "g", kind="third-party"), r"g.toml: .*homepage"),
    ],
)
@pytest.mark.parametrize("command", ["list", "check"])
def test_bad_entry_is_one_clear_error(tmp_path, capsys, setup, message, command):
    setup(tmp_path)
    assert cli.main(["registry", command, "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    import re

    assert re.search(message, err, re.S), err


def test_check_compares_entries_with_the_installed_plugins(tmp_path, capsys):
    pytest.importorskip("grpo_zoo_knapsack")
    _write(tmp_path, "knapsack", dist="grpo-zoo-somebody-else")
    _write(tmp_path, "builtin.cli", dist="grpo-zoo", kind="builtin", extra='min_core_version = "99.0"')
    assert cli.main(["registry", "check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "knapsack: catalog says distribution 'grpo-zoo-somebody-else' but the installed plugin comes from 'grpo-zoo-knapsack'" in out
    assert "builtin.cli: min_core_version 99.0 is above the installed grpo-zoo" in out


def test_real_catalog_still_checks_clean(capsys):
    assert cli.main(["registry", "check"]) == 0, capsys.readouterr().out
