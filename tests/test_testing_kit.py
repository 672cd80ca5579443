"""The contract test kit's plugin argument: strings name installed plugins, objects must be plugins."""
import pytest


def test_string_value_loads_the_installed_plugin(zoo_context):
    pytest.importorskip("grpo_zoo_mc_grpo")
    ctx = zoo_context(plugins={"mc_grpo": "mc_grpo"})
    obj = ctx.hooks.pm.get_plugin("mc_grpo")
    assert not isinstance(obj, str) and type(obj).__name__ == "MCGRPO"  # before the fix: the string itself
    assert ctx.config.mc_grpo is not None  # its config section is active


def test_mismatched_string_and_non_plugin_objects_fail(zoo_context):
    with pytest.raises(ValueError, match=r"a string names an installed plugin and must equal its key"):
        zoo_context(plugins={"mine": "mc_grpo"})
    with pytest.raises(ValueError, match=r"plugins\['x'\] = 5 implements no grpo-zoo hook"):
        zoo_context(plugins={"x": 5})
