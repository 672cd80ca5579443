"""The [mc_grpo] section: defaults, errors that name the key, the plugin contract."""
import pytest

from grpo_zoo.config import ConfigError
from grpo_zoo.plugins import installed_entry_points
from grpo_zoo_mc_grpo import MCGRPO, MCGRPOConfig

HOOKS = {
    "zoo_aggregate_rewards",
    "zoo_config_model",
    "zoo_group_center",
    "zoo_group_scale",
    "zoo_load_state_dict",
    "zoo_plan_budget",
    "zoo_select_for_loss",
    "zoo_state_dict",
    "zoo_step_metrics",
}


def test_contract(zoo_check_plugin):
    assert set(zoo_check_plugin(MCGRPO())) == HOOKS


def test_entry_point_is_installed():
    ep = installed_entry_points()["mc_grpo"]
    assert ep.value == "grpo_zoo_mc_grpo.plugin:MCGRPO"
    assert ep.dist.name == "grpo-zoo-mc-grpo"


def test_defaults(zoo_context):
    cfg = zoo_context(plugins=["mc_grpo"]).config.mc_grpo
    assert cfg == MCGRPOConfig()
    assert (cfg.eps, cfg.rescale, cfg.clip_value, cfg.pivot_on, cfg.sign_flip_reference) == (
        1e-3,
        "none",
        1.0,
        "advantage",
        "history",
    )
    assert (cfg.odd_groups, cfg.nonzero_rescale, cfg.baseline) == (True, False, "median")


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"eps": 0}, "mc_grpo.eps"),
        ({"eps": -1e-3}, "mc_grpo.eps"),
        ({"eps": "small"}, "mc_grpo.eps"),
        ({"eps": float("inf")}, "mc_grpo.eps"),
        ({"rescale": "tanh"}, "mc_grpo.rescale"),
        ({"clip_value": 0}, "mc_grpo.clip_value"),
        ({"pivot_on": "length"}, "mc_grpo.pivot_on"),
        ({"sign_flip_reference": "oracle"}, "mc_grpo.sign_flip_reference"),
        ({"group_plus": 2}, "mc_grpo.group_plus"),
        ({"baseline": "mean"}, "mc_grpo.baseline"),
        ({"odd_groups": "maybe"}, "mc_grpo.odd_groups"),
    ],
)
def test_bad_values_name_the_key(zoo_context, section, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        zoo_context(plugins=["mc_grpo"], config={"mc_grpo": section})


def test_section_without_the_plugin_is_an_error(zoo_context):
    with pytest.raises(ConfigError, match=r"\[mc_grpo\].*not listed"):
        zoo_context(config={"mc_grpo": {"eps": 0.1}})
