"""Run config validation (errors name the key path), --set overrides, plugin sections, and the CLI."""
from __future__ import annotations

import json

import pytest
from pydantic import Field

from grpo_zoo import cli
from grpo_zoo.config import ConfigError, CoreConfig, Section, apply_overrides, parse_value
from grpo_zoo.context import load_config, make_context
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.plugins import BUILTIN_MODULES, implemented_hooks, load_plugin


class KnobConfig(Section):
    alpha: float = Field(0.5, ge=0, le=1)
    mode: str = "a"


class Knob:
    @hookimpl
    def zoo_config_model(self):
        return KnobConfig


def load(raw, overrides=None, plugins=None):
    return load_config(raw, overrides, extra_plugins=plugins)[0]


@pytest.mark.parametrize(
    "raw,path,words",
    [
        ({"loss": {"typo": 1}}, "loss.typo", "Extra inputs are not permitted"),
        ({"bogus_top": 1}, "bogus_top", "Extra inputs are not permitted"),
        ({"sampling": {"endpoint": {"urll": "x"}}}, "sampling.endpoint.urll", "Extra inputs"),
        ({"sampling": {"group_size": "four"}}, "sampling.group_size", "valid integer"),
        ({"train": {"lr": "fast"}}, "train.lr", "valid number"),
        ({"loss": {"type": "ppo"}}, "loss.type", "'grpo'"),
        ({"advantage": {"scale": "global"}}, "advantage.scale", "'group'"),
        ({"loss": {"beta": -0.1}}, "loss.beta", "greater than or equal to 0"),
        ({"sampling": {"top_p": 1.5}}, "sampling.top_p", "less than or equal to 1"),
        ({"train": {"lr": 0}}, "train.lr", "greater than 0"),
        ({"sampling": {"group_size": 0}}, "sampling.group_size", "greater than or equal to 1"),
        ({"reward": {"builtin": ["correct", "style"]}}, "reward.builtin.1", "'correct'"),
    ],
)
def test_bad_values_name_the_key_path(raw, path, words):
    with pytest.raises(ConfigError) as err:
        load(raw)
    msg = str(err.value)
    assert f"  {path}: " in msg, msg
    assert words in msg, msg


def test_several_errors_are_reported_together():
    with pytest.raises(ConfigError) as err:
        load({"loss": {"beta": -1, "typo": 2}, "sampling": {"group_size": 0}})
    msg = str(err.value)
    assert "loss.beta" in msg and "loss.typo" in msg and "sampling.group_size" in msg


def test_plugins_must_be_a_list_of_names():
    with pytest.raises(ConfigError, match="plugins: expected a list"):
        load({"plugins": "gdpo"})


def test_defaults_follow_the_algorithm_reference():
    cfg = load({})
    assert isinstance(cfg, CoreConfig)
    assert (cfg.advantage.scale, cfg.advantage.eps, cfg.advantage.aggregation) == ("group", 1e-4, "sum_then_normalize")
    assert (cfg.loss.type, cfg.loss.epsilon_low, cfg.loss.epsilon_high, cfg.loss.beta) == ("grpo", 0.2, 0.2, 0.0)
    assert cfg.loss.num_iterations == 1
    assert cfg.reward.builtin == ["correct"] and cfg.plugins == [] and cfg.run.hook_owners == {}


def test_set_overrides():
    cfg = load(
        {"loss": {"type": "dapo"}},
        [
            "loss.type=dr_grpo",
            "sampling.group_size=8",
            "loss.beta = 0.04",
            "task.system_prompt=Think step by step.",
            "reward.builtin=['correct', 'format']",
            "reward.weights.format=0.5",
            "train.dtype=bfloat16",
        ],
    )
    assert cfg.loss.type == "dr_grpo"
    assert cfg.sampling.group_size == 8 and isinstance(cfg.sampling.group_size, int)
    assert cfg.loss.beta == 0.04
    assert cfg.task.system_prompt == "Think step by step."
    assert cfg.reward.builtin == ["correct", "format"] and cfg.reward.weights == {"format": 0.5}
    assert cfg.train.dtype == "bfloat16"


def test_set_overrides_are_validated_and_checked():
    with pytest.raises(ConfigError, match="sampling.group_size"):
        load({}, ["sampling.group_size=-2"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load({}, ["loss.type"])
    with pytest.raises(ConfigError, match="'type' is not a section"):
        apply_overrides({"loss": {"type": "grpo"}}, ["loss.type.x=1"])
    raw = {"loss": {"type": "grpo"}}
    apply_overrides(raw, ["loss.type=dapo"])
    assert raw == {"loss": {"type": "grpo"}}, "overrides must not mutate the caller's dict"
    assert parse_value("3") == 3 and parse_value("true") is True and parse_value("hello world") == "hello world"


def test_plugin_section_is_validated_with_its_key_path():
    cfg = load({"plugins": ["knob"], "knob": {"alpha": 0.25}}, plugins={"knob": Knob})
    assert cfg.knob.alpha == 0.25 and cfg.knob.mode == "a"
    assert load({"plugins": ["knob"]}, plugins={"knob": Knob}).knob.alpha == 0.5  # defaults
    with pytest.raises(ConfigError, match=r"knob\.alpha: Input should be less than or equal to 1"):
        load({"plugins": ["knob"], "knob": {"alpha": 3}}, plugins={"knob": Knob})
    with pytest.raises(ConfigError, match=r"knob\.extra: Extra inputs"):
        load({"plugins": ["knob"], "knob": {"extra": 1}}, plugins={"knob": Knob})
    ctx = make_context({"plugins": ["knob"], "knob": {"mode": "b"}}, ["knob.alpha=1"], extra_plugins={"knob": Knob})
    assert ctx.plugin_config("knob").alpha == 1.0 and ctx.config.knob.mode == "b"


def test_plugin_section_without_the_plugin_named_errors(install_fake_plugin):
    # not installed at all: an unknown top-level key
    with pytest.raises(ConfigError, match=r"sneaky: Extra inputs are not permitted"):
        load({"sneaky": {"strength": 1.0}})
    # installed but not listed in `plugins`
    install_fake_plugin("sneaky")
    with pytest.raises(ConfigError, match=r"section \[sneaky\] is given but plugin 'sneaky' is not listed in `plugins`"):
        load({"sneaky": {"strength": 1.0}})
    assert load({"plugins": ["sneaky"], "sneaky": {"strength": 1.0}}).sneaky.strength == 1.0
    with pytest.raises(ConfigError, match=r"sneaky\.strength"):
        load({"plugins": ["sneaky"], "sneaky": {"strength": -1.0}})


def test_section_for_a_plugin_without_config_model():
    class Bare:
        @hookimpl
        def zoo_observe(self, ctx, rollouts):
            pass

    with pytest.raises(ConfigError, match="plugin 'bare' declares no config model"):
        load({"plugins": ["bare"], "bare": {"x": 1}}, plugins={"bare": Bare})


def test_plugin_section_may_not_shadow_a_core_section():
    class Shadow:
        @hookimpl
        def zoo_config_model(self):
            return KnobConfig

    with pytest.raises(ConfigError, match="clash with core sections: loss"):
        load({"plugins": ["loss"]}, plugins={"loss": Shadow})


# ---------------------------------------------------------------- CLI


def test_cli_plugins_json_lists_builtins(capsys):
    assert cli.main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    for name in BUILTIN_MODULES:
        row = by_name[name]
        assert set(row) >= {"name", "distribution", "version", "hooks", "builtin"}
        assert row["builtin"] is True and row["distribution"] == "grpo-zoo"
        assert row["version"] == __import__("grpo_zoo").__version__
        assert row["hooks"] == implemented_hooks(load_plugin(name)) and row["hooks"]
    assert "zoo_policy_loss" in by_name["builtin.loss"]["hooks"]
    assert by_name["builtin.cli"]["hooks"] == ["zoo_register_commands"]


def test_cli_plugins_lists_an_installed_plugin(install_fake_plugin, capsys):
    install_fake_plugin("sneaky")
    assert cli.main(["plugins", "--json"]) == 0
    row = {r["name"]: r for r in json.loads(capsys.readouterr().out)}["sneaky"]
    assert row["builtin"] is False and row["distribution"] == "grpo-zoo-sneaky" and row["version"] == "0.3.0"
    assert row["hooks"] == ["zoo_config_model", "zoo_group_center", "zoo_policy_loss", "zoo_register_commands"]
    assert cli.main(["plugins"]) == 0  # the text table
    text = capsys.readouterr().out
    assert "sneaky" in text and "grpo-zoo-sneaky 0.3.0" in text and "built-in" in text


def test_cli_config_show_prints_resolved_defaults(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text('model = "tiny-random"\n[loss]\ntype = "dapo"\n')
    assert cli.main(["config", "show", str(path), "--set", "sampling.group_size=6"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["model"] == "tiny-random"
    # a subset: later keys (behavior_correction, ...) are checked by the model_dump comparison below
    assert shown["loss"].items() >= {"type": "dapo", "epsilon_low": 0.2, "epsilon_high": 0.2, "beta": 0.0, "num_iterations": 1,
                                     "importance_sampling_level": "token", "kl_bias_correction": True,
                                     "sapo_temperature_pos": 1.0, "sapo_temperature_neg": 1.05,
                                     "mask_truncated_completions": False}.items()
    assert shown["sampling"]["group_size"] == 6
    assert shown["advantage"] == {"scale": "group", "eps": 0.0001, "aggregation": "sum_then_normalize"}
    assert shown["run"] == {"hook_owners": {}}
    assert shown == CoreConfig.model_validate(
        {"model": "tiny-random", "loss": {"type": "dapo"}, "sampling": {"group_size": 6}}
    ).model_dump(mode="json")


def test_cli_config_errors_exit_2_with_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[loss]\nbeta = -1\n")
    assert cli.main(["config", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grpo-zoo: error: invalid config") and "loss.beta" in err
    assert cli.main(["config", "show", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text("[loss\n")
    assert cli.main(["config", "show", str(tmp_path / "broken.toml")]) == 2
    assert "invalid TOML" in capsys.readouterr().err
    assert cli.main(["config", "show", str(path), "--set", "plugins=['no_such_plugin']"]) == 2
    assert "not installed" in capsys.readouterr().err


def test_cli_builtin_command_is_registered_through_the_hook():
    # builtin.cli's zoo_register_commands adds `plot`
    parser = cli.build_parser()
    args = parser.parse_args(["plot", "some/run"])
    assert args.run_dir == "some/run" and callable(args.func)


def test_cli_without_drops_a_plugin_and_its_section(install_fake_plugin, tmp_path, capsys):
    install_fake_plugin("sneaky")
    cfg = tmp_path / "run.toml"
    cfg.write_text('plugins = ["sneaky"]\n[sneaky]\nstrength = 3.0\n')
    assert cli.main(["config", "show", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out)["sneaky"]["strength"] == 3.0
    assert cli.main(["config", "show", str(cfg), "--without", "sneaky"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["plugins"] == [] and "sneaky" not in shown
    assert cli.main(["config", "show", str(cfg), "--without", "absent"]) == 2
    assert "--without absent: not in plugins ['sneaky']" in capsys.readouterr().err


def test_drop_plugins_removes_section():
    from grpo_zoo.config import drop_plugins

    raw = {"plugins": ["a", "b"], "a": {"x": 1}, "sampling": {"group_size": 2}}
    out = drop_plugins(raw, ["a"])
    assert out == {"plugins": ["b"], "sampling": {"group_size": 2}}
    assert raw["plugins"] == ["a", "b"]  # the input is left alone


def test_drop_plugins_removes_the_dropped_plugins_reward_columns_from_weight_maps(install_fake_plugin, tmp_path, capsys):
    from grpo_zoo.config import drop_plugins

    raw = {
        "plugins": ["dapo", "gdpo"],
        "reward": {"weights": {"correct": 2.0, "dapo/overlong": 0.5}},
        "gdpo": {"weights": {"dapo/overlong": 1.0, "correct": 1.0}},
        "dapo": {"overlong_buffer": 4},
    }
    out = drop_plugins(raw, ["dapo"])
    assert out == {"plugins": ["gdpo"], "reward": {"weights": {"correct": 2.0}}, "gdpo": {"weights": {"correct": 1.0}}}
    assert raw["reward"]["weights"]["dapo/overlong"] == 0.5  # the input is left alone
    # end to end: the baseline config loads (before the fix it kept 'dapo/overlong' in reward.weights)
    install_fake_plugin("sneaky")
    cfg = tmp_path / "run.toml"
    cfg.write_text('plugins = ["sneaky"]\n[reward.weights]\ncorrect = 1.0\n"sneaky/bonus" = 0.3\n')
    assert cli.main(["config", "show", str(cfg), "--without", "sneaky"]) == 0
    assert json.loads(capsys.readouterr().out)["reward"]["weights"] == {"correct": 1.0}
