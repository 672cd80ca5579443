import torch

from grpo_zoo import Groups
from grpo_zoo_rloo.plugin import RLOO


def test_contract(zoo_check_plugin):
    assert set(zoo_check_plugin(RLOO)) == {"zoo_config_model", "zoo_group_center", "zoo_group_scale", "zoo_step_metrics"}


def test_leave_one_out_advantages(zoo_context):
    ctx = zoo_context(plugins={"rloo": RLOO})
    r = torch.tensor([1.0, 0.0, 0.0, 2.0, 5.0])
    groups = Groups.from_sizes([3, 1, 1])
    adv = ctx.normalize(r, groups)
    # group 0: 1 - (0+0)/2 = 1, 0 - (1+0)/2 = -0.5 twice; singletons -> 0
    assert torch.allclose(adv, torch.tensor([1.0, -0.5, -0.5, 0.0, 0.0]))


def test_training_step(zoo_train_step):
    result = zoo_train_step(plugins={"rloo": RLOO}, steps=2)
    assert result.last["rloo/singleton_groups"] == 0
    assert result.last["advantage/abs_mean"] > 0
