"""Core's built-in hooks on hand-computed numbers (ALGORITHMS.md section 0) and answers.py."""
from __future__ import annotations

import json
import math

import pytest
import torch

from grpo_zoo.answers import answers_match, extract_answer
from grpo_zoo.builtins.curriculum import epoch_order
from grpo_zoo.config import ConfigError
from grpo_zoo.context import make_context
from grpo_zoo.plugins import PluginHookError
from grpo_zoo.testing import BASE_CONFIG, merge, roundtrip_state
from grpo_zoo.types import LossInputs, RolloutRequest, Rollouts, Task


def ctx_for(**sections):
    return make_context(merge(BASE_CONFIG, sections))


def rollouts(columns: dict, group, tasks=None, completion_ids=None, texts=None):
    n = len(group)
    tasks = tasks or [Task(id=f"t{i}", prompt=f"q{i}", answer="1") for i in range(int(max(group)) + 1)]
    return Rollouts(
        tasks=tasks,
        group=torch.tensor(group),
        prompt_text=["p"] * n,
        prompt_ids=[[1]] * n,
        completion_ids=completion_ids or [[2, 3]] * n,
        completion_text=texts or ["x"] * n,
        rewards={k: torch.tensor(v, dtype=torch.float32) for k, v in columns.items()},
    )


def advantages(ctx, r):
    ctx.compute_advantages(r)  # zoo_aggregate_rewards -> zoo_group_center / zoo_group_scale; zoo_select_for_loss
    return r.advantages


# Ragged, non-contiguous: group 0 = positions 0, 2, 5 -> [1, 0, 0]; group 1 = position 3 -> [1] (size 1);
# group 2 = positions 1, 4 -> [0.5, 1].
R = [1.0, 0.5, 0.0, 1.0, 1.0, 0.0]
G = [0, 2, 0, 1, 2, 0]


def test_scale_group_hand_numbers():
    # group 0: mean 1/3, unbiased std sqrt(1/3) = 0.57735; A = (r - 1/3) / (0.57735 + 1e-4)
    # group 2: mean 0.75, std sqrt(0.125) = 0.35355; A = -+0.25 / (0.35355 + 1e-4)
    expected = [1.1545005730, -0.7069068377, -0.5772502865, 0.0, 0.7069068377, -0.5772502865]
    got = advantages(ctx_for(), rollouts({"correct": R}, G))
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(expected, abs=1e-6)
    assert got[3] == 0.0, "a group of size 1 gets advantage 0"


def test_scale_batch_hand_numbers():
    # centre: group mean; scale: unbiased std of all six rewards = 0.4915960 (+ 1e-4)
    s = 0.4915960401250875 + 1e-4
    expected = [(2 / 3) / s, -0.25 / s, -(1 / 3) / s, 0.0, 0.25 / s, -(1 / 3) / s]
    got = advantages(ctx_for(advantage={"scale": "batch"}), rollouts({"correct": R}, G))
    assert got.tolist() == pytest.approx(expected, abs=1e-6)
    assert expected[0] == pytest.approx(1.3558512013, abs=1e-9)


def test_scale_none_is_mean_centring_only():
    expected = [2 / 3, -0.25, -1 / 3, 0.0, 0.25, -1 / 3]
    got = advantages(ctx_for(advantage={"scale": "none"}), rollouts({"correct": R}, G))
    assert got.tolist() == pytest.approx(expected, abs=1e-7)


def test_eps_is_configurable():
    got = advantages(ctx_for(advantage={"eps": 0.0}), rollouts({"correct": [0.0, 1.0]}, [0, 0]))
    assert got.tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-7)
    # the default eps is 1e-4: 0.5 / (sqrt(0.5) + 1e-4)
    got = advantages(ctx_for(), rollouts({"correct": [0.0, 1.0]}, [0, 0]))
    assert got.tolist() == pytest.approx([-0.7070067953, 0.7070067953], abs=1e-7)


def test_single_rollout_groups_and_constant_groups_get_zero():
    for scale in ("group", "batch", "none"):
        got = advantages(ctx_for(advantage={"scale": scale}), rollouts({"correct": [1.0, 0.0, 1.0, 1.0]}, [0, 1, 2, 2]))
        assert got.tolist() == [0.0, 0.0, 0.0, 0.0], scale


def test_grpo_collapse_vectors_from_the_reference():
    # ALGORITHMS.md section 2: GRPO on the summed reward, G = 2, totals (0,1), (0,2), (1,2)
    r1 = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    r2 = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    got = advantages(ctx_for(), rollouts({"r1": r1, "r2": r2}, [0, 0, 1, 1, 2, 2]))
    assert got.tolist() == pytest.approx([-0.7071, 0.7071] * 3, abs=1e-4)
    # G = 3, r1 = (1,1,0) and r2 = (0,0,1) sum to (1,1,1): all zeros
    got = advantages(ctx_for(), rollouts({"r1": [1.0, 1.0, 0.0], "r2": [0.0, 0.0, 1.0]}, [0, 0, 0]))
    assert got.tolist() == [0.0, 0.0, 0.0]


def test_reward_weights_apply_before_normalizing():
    # total = 2 * a + 0.5 * b = [2, 0.5, 0, 2.5] in groups [0, 0, 1, 1]
    cols = {"a": [1.0, 0.0, 0.0, 1.0], "b": [0.0, 1.0, 0.0, 1.0]}
    got = advantages(ctx_for(reward={"weights": {"a": 2.0, "b": 0.5}}), rollouts(cols, [0, 0, 1, 1]))
    d0, d1 = (2 - 0.5) / 2, 2.5 / 2  # half-differences; std of a pair = |difference| / sqrt(2)
    s0, s1 = 1.5 / math.sqrt(2) + 1e-4, 2.5 / math.sqrt(2) + 1e-4
    assert got.tolist() == pytest.approx([d0 / s0, -d0 / s0, -d1 / s1, d1 / s1], abs=1e-6)
    # unweighted columns default to 1.0
    ctx = ctx_for(reward={"weights": {"a": 2.0}})
    assert ctx.reward_weights(rollouts(cols, [0, 0, 1, 1])) == {"a": 2.0, "b": 1.0}


def test_normalize_then_sum_hand_numbers():
    # per column within groups, weighted sum, then batch standardization (unbiased std, eps 1e-4)
    cols = {"a": [0.0, 1.0, 0.0, 1.0], "b": [0.0, 0.0, 0.0, 1.0]}
    z = 0.5 / (math.sqrt(0.5) + 1e-4)  # a pair (0, 1) normalized within its group
    s = [-z, z, -2 * z, 2 * z]  # b's first group is constant -> 0
    mean = sum(s) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in s) / 3)
    expected = [(x - mean) / (std + 1e-4) for x in s]
    got = advantages(ctx_for(advantage={"aggregation": "normalize_then_sum"}), rollouts(cols, [0, 0, 1, 1]))
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


def test_select_for_loss_keeps_every_rollout():
    r = rollouts({"correct": R}, G)
    r.in_loss = None
    advantages(ctx_for(), r)
    assert r.in_loss.dtype == torch.bool and r.in_loss.all()


def test_advantage_config_errors():
    with pytest.raises(ConfigError, match=r"reward.weights names column\(s\) \['typo'\]"):
        advantages(ctx_for(reward={"weights": {"typo": 1.0}}), rollouts({"correct": R}, G))
    with pytest.raises(ConfigError, match="no reward columns"):
        advantages(ctx_for(), rollouts({}, G))


def test_group_center_and_scale_hooks_directly():
    ctx = ctx_for()
    r = rollouts({"correct": R}, G)
    values = r.rewards["correct"]
    center = ctx.hooks.group_center(ctx, values, r.groups)  # zoo_group_center
    assert center.tolist() == pytest.approx([1 / 3, 0.75, 1 / 3, 1.0, 0.75, 1 / 3])
    scale = ctx.hooks.group_scale(ctx, values, r.groups, center)  # zoo_group_scale
    assert scale.tolist() == pytest.approx([math.sqrt(1 / 3) + 1e-4, math.sqrt(0.125) + 1e-4, math.sqrt(1 / 3) + 1e-4, 1e-4, math.sqrt(0.125) + 1e-4, math.sqrt(1 / 3) + 1e-4])


# ---------------------------------------------------------------- loss


def _inputs(logp, old, adv, mask, ref=None, max_len=5):
    mask = torch.tensor(mask, dtype=torch.bool)
    return LossInputs(
        logp=torch.tensor(logp, dtype=torch.float64),
        old_logp=torch.tensor(old, dtype=torch.float64),
        advantages=torch.tensor(adv, dtype=torch.float64),
        mask=mask,
        ref_logp=None if ref is None else torch.tensor(ref, dtype=torch.float64),
        total_tokens=float(mask.sum()),
        total_sequences=float(mask.shape[0]),
        max_completion_length=max_len,
    )


def test_clipped_surrogate_hand_numbers():
    up, down = math.log(1.5), math.log(0.5)
    inputs = _inputs([[up, down], [up, down]], [[0.0, 0.0], [0.0, 0.0]], [1.0, -1.0], [[1, 1], [1, 1]])
    ctx = ctx_for()
    per_token = ctx.hooks.policy_loss(ctx, inputs)  # zoo_policy_loss
    # A = +1: -min(1.5, 1.2) = -1.2 and -min(0.5, 0.8) = -0.5; A = -1: -min(-1.5, -1.2) = 1.5 and 0.8
    assert per_token.flatten().tolist() == pytest.approx([-1.2, -0.5, 1.5, 0.8])
    ctx = ctx_for(loss={"epsilon_low": 0.1, "epsilon_high": 0.3})
    assert ctx.hooks.policy_loss(ctx, inputs).flatten().tolist() == pytest.approx([-1.3, -0.5, 1.5, 0.9])


def test_gspo_uses_one_ratio_per_sequence():
    # mean log-ratio over the 2 unmasked tokens = (log 1.5 + log 0.5) / 2 -> ratio sqrt(0.75)
    inputs = _inputs([[math.log(1.5), math.log(0.5), 9.0]], [[0.0, 0.0, 0.0]], [1.0], [[1, 1, 0]])
    ctx = ctx_for(loss={"type": "gspo"})
    per_token = ctx.hooks.policy_loss(ctx, inputs)
    assert per_token.shape == (1, 1)
    assert per_token.item() == pytest.approx(-max(min(math.sqrt(0.75), 1.2), 0.8))


def test_k3_kl_hand_numbers():
    inputs = _inputs([[0.0, -1.0]], [[0.0, -1.0]], [1.0], [[1, 1]], ref=[[math.log(2), -1.0]])
    ctx = ctx_for(loss={"beta": 0.1})
    kl = ctx.hooks.kl(ctx, inputs)  # zoo_kl: exp(ref - new) - (ref - new) - 1
    assert kl.flatten().tolist() == pytest.approx([2 - math.log(2) - 1, 0.0])


@pytest.mark.parametrize(
    "kind,expected",
    [("grpo", 3.0), ("gspo", 3.0), ("dapo", 2.5), ("dr_grpo", 1.0), ("bnpo", 2.5)],
)
def test_aggregations_hand_numbers(kind, expected):
    # per-token [[1, 2, 3], [4, x, x]] with 4 active tokens; grpo: mean(2, 4) = 3; dapo: 10 / 4;
    # dr_grpo: 10 / (2 sequences * max_completion_length 5); bnpo: 10 / 4 local tokens
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]], dtype=torch.float64)
    inputs = _inputs([[0.0] * 3] * 2, [[0.0] * 3] * 2, [0.0, 0.0], [[1, 1, 1], [1, 0, 0]])
    ctx = ctx_for(loss={"type": kind})
    assert ctx.hooks.aggregate_loss(ctx, per_token, inputs).item() == pytest.approx(expected)  # zoo_aggregate_loss


def test_aggregation_uses_the_step_wide_normalizers():
    per_token = torch.ones(2, 3, dtype=torch.float64)
    inputs = _inputs([[0.0] * 3] * 2, [[0.0] * 3] * 2, [0.0, 0.0], [[1, 1, 1], [1, 0, 0]])
    inputs.total_tokens, inputs.total_sequences, inputs.num_micro_batches = 8.0, 4.0, 2
    expected = {"grpo": 2 / 4, "dapo": 4 / 8, "dr_grpo": 4 / (4 * 5), "bnpo": 4 / 4 / 2}
    for kind, value in expected.items():
        ctx = ctx_for(loss={"type": kind})
        assert ctx.hooks.aggregate_loss(ctx, per_token, inputs).item() == pytest.approx(value), kind


# ---------------------------------------------------------------- rewards


def test_builtin_reward_columns():
    scored = Task(id="s", prompt="q", score=lambda text: 0.25 if "maybe" in text else 1.0)
    plain = Task(id="p", prompt="What is 2+2?", answer="4")
    r = rollouts(
        {},
        [0, 0, 1, 1],
        tasks=[scored, plain],
        completion_ids=[[1, 2], [1] * 8, [1], [1] * 3],
        texts=["maybe", "sure", "it is <answer>4</answer>", "\\boxed{5}"],
    )
    ctx = ctx_for(reward={"builtin": ["correct", "format", "length"], "length_target": 4})
    cols = ctx.hooks.rewards(ctx, r)  # zoo_reward
    assert list(cols) == ["correct", "format", "length"]
    assert cols["correct"].tolist() == [0.25, 1.0, 1.0, 0.0]
    assert cols["format"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert cols["length"].tolist() == [0.5, 0.0, 0.75, 0.25]
    assert all(c.dtype == torch.float32 for c in cols.values())


def test_reward_needs_an_answer_or_a_scorer():
    r = rollouts({}, [0], tasks=[Task(id="bare", prompt="q")])
    ctx = ctx_for()
    with pytest.raises(PluginHookError, match="'builtin.reward' failed in hook zoo_reward.*neither a scorer nor an answer"):
        ctx.hooks.rewards(ctx, r)


# ---------------------------------------------------------------- answers.py


@pytest.mark.parametrize(
    "text,expected",
    [
        ("so <answer> 42 </answer>", "42"),
        ("<answer>1</answer> then <ANSWER>2</ANSWER>", "2"),
        ("\\boxed{3/4}", "3/4"),
        ("\\boxed{1} <answer>2</answer>", "2"),
        ("\\boxed{1} and \\boxed{x+1}", "x+1"),
        ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),  # nested braces
        ("the numbers 1,234 and -5.", "-5"),
        ("total 1,234", "1234"),
        ("it is 2.50 dollars", "2.50"),
        ("no number here", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "predicted,gold,ok",
    [
        ("1234", "1,234", True),
        ("0.5", "1/2", True),
        ("3.0", "3", True),
        ("7.", "7", True),
        ("-7", "-7", True),
        ("0.333333", "1/3", True),
        ("1000001", "1000000", False),  # integers compare exactly
        ("12345678901234567", "12345678901234568", False),
        ("Paris", " paris ", True),
        ("\\frac{1}{2}", "0.5", True),  # math-verify
        ("x+1", "1+x", True),
        ("x+2", "1+x", False),
        ("2", "3", False),
        ("1/0", "1", False),
        (None, "1", False),
        ("{{{", "1", False),  # math-verify cannot parse: no match, no exception
    ],
)
def test_answers_match(predicted, gold, ok):
    assert answers_match(predicted, gold) is ok


# ---------------------------------------------------------------- curriculum


def test_select_tasks_is_seeded_epoch_aware_and_covers_each_task_once_per_epoch():
    ctx = ctx_for()
    source = [Task(id=str(i), prompt=f"q{i}") for i in range(5)]
    picked = [t.id for step in range(5) for t in ctx.hooks.select_tasks(ctx, source, step, 2)]  # zoo_select_tasks
    assert sorted(picked[:5]) == sorted(picked[5:]) == ["0", "1", "2", "3", "4"]
    assert ctx.info["epoch"] == 1
    again = [t.id for step in range(5) for t in ctx.hooks.select_tasks(ctx, source, step, 2)]
    assert again == picked, "a pure function of (seed, step): resuming needs no saved position"
    assert epoch_order(5, 0, 0, True).tolist() != epoch_order(5, 1, 0, True).tolist()
    other_seed = make_context(merge(BASE_CONFIG, {"seed": 1}))
    assert [t.id for t in other_seed.hooks.select_tasks(other_seed, source, 0, 5)] != picked[:5]
    ordered = ctx_for(task={"shuffle": False})
    assert [t.id for t in ordered.hooks.select_tasks(ordered, source, 1, 3)] == ["3", "4", "0"]
    with pytest.raises(PluginHookError, match="source is empty"):
        ctx.hooks.select_tasks(ctx, [], 0, 2)


def test_curriculum_lifecycle_and_state():
    ctx = ctx_for()
    ctx.hooks.run_start(ctx)  # zoo_run_start
    ctx.hooks.observe(ctx, rollouts({"correct": [1.0, 0.0]}, [0, 1]))  # zoo_observe
    metrics = ctx.hooks.step_metrics(ctx, rollouts({"correct": [1.0]}, [0]), 0)  # zoo_step_metrics
    assert metrics == {"curriculum/epoch": 0, "curriculum/tasks_seen": 2}
    assert roundtrip_state(ctx, "builtin.curriculum") == {"tasks_seen": 2}  # zoo_state_dict / zoo_load_state_dict
    fresh = ctx_for()
    fresh.hooks.load_state_dicts(fresh, {"builtin.curriculum": {"tasks_seen": 7}})
    assert fresh.info["tasks_seen"] == 7
    end: dict = {}
    ctx.hooks.run_end(ctx, end)  # zoo_run_end
    assert end == {"curriculum/epochs_done": 0}


def test_task_source_file_and_reasoning_gym(tmp_path):
    path = tmp_path / "tasks.jsonl"
    rows = [{"id": "a", "prompt": "1+1?", "answer": 2, "level": 1}, {"prompt": "2+2?", "answer": "4", "level": 2}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    ctx = ctx_for(task={"source": "file", "path": str(path)})
    tasks = ctx.hooks.task_source(ctx)  # zoo_task_source
    assert [(t.id, t.prompt, t.answer) for t in tasks] == [("a", "1+1?", "2"), ("tasks/1", "2+2?", "4")]
    assert tasks[1].metadata == {"level": 2}
    with pytest.raises(ConfigError, match="needs task.path"):  # at load time (zoo_check_config), before any model
        ctx_for(task={"source": "file"})
    gym = ctx_for(task={"name": "basic_arithmetic", "size": 3})
    gym_tasks = gym.hooks.task_source(gym)
    assert len(gym_tasks) == 3 and gym_tasks[0].score is not None
    assert gym_tasks[0].score(f"<answer>{gym_tasks[0].answer}</answer>") == 1.0


# ---------------------------------------------------------------- sampling


def test_plan_budget_and_build_prompt():
    ctx = ctx_for(task={"system_prompt": "Be brief."})
    tasks = [Task(id="a", prompt="q1"), Task(id="b", prompt=[{"role": "user", "content": "q2"}])]
    assert ctx.hooks.plan_budget(ctx, tasks, 5) == [5, 5]  # zoo_plan_budget
    assert ctx.hooks.build_prompt(ctx, tasks[0]) == [  # zoo_build_prompt
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q1"},
    ]
    assert ctx.hooks.build_prompt(ctx, tasks[1]) == tasks[1].prompt  # chat messages pass through
    plain = ctx_for()
    assert plain.hooks.build_prompt(plain, tasks[0]) == [{"role": "user", "content": "q1"}]


def test_builtin_generate_needs_a_model():
    ctx = ctx_for()
    request = RolloutRequest(tasks=[Task(id="a", prompt="q")], prompts=["q"], budgets=[1])
    with pytest.raises(PluginHookError, match="'builtin.sampling' failed in hook zoo_generate.*needs a loaded model"):
        ctx.hooks.generate(ctx, request)  # zoo_generate
    with pytest.raises(PluginHookError, match="zoo_generate"):
        ctx.hooks.rollout(ctx, request)  # zoo_rollout = ctx.sample = generate + score


def test_sampling_seed_salt_gives_a_request_its_own_stream(zoo_context):
    ctx = zoo_context()
    tasks = [Task(id="t", prompt="2+2?", answer="4")]
    plain = RolloutRequest(tasks=tasks, prompts=["2+2?"], budgets=[2])
    salted = RolloutRequest(tasks=tasks, prompts=["2+2?"], budgets=[2], extras={"seed_salt": 7})
    assert ctx.sampling_seed(plain) == ctx.generator(1).initial_seed()  # unsalted: the run's usual stream
    assert ctx.sampling_seed(salted) == ctx.generator(1, 7).initial_seed() != ctx.sampling_seed(plain)
    seeds = set()
    for step in range(3):
        ctx.step = step
        seeds.add(ctx.sampling_seed(salted))
    assert len(seeds) == 3
    bad = RolloutRequest(tasks=tasks, prompts=["2+2?"], budgets=[2], extras={"seed_salt": "x"})
    with pytest.raises(TypeError, match="'x'"):
        ctx.sampling_seed(bad)


def test_rollouts_carry_behavior_prompts_through_take_concat_and_replace():
    tasks = [Task(id=f"t{k}", prompt="q", answer="1") for k in range(2)]

    def batch(group, behavior=None):
        n = len(group)
        return Rollouts(tasks=tasks, group=torch.tensor(group), prompt_text=["p"] * n, prompt_ids=[[1]] * n,
                        completion_ids=[[2, 3]] * n, completion_text=["c"] * n, behavior_prompt_ids=behavior,
                        rewards={"r": torch.zeros(n)})

    plain = batch([0, 0, 1, 1])
    hinted = batch([1, 1], behavior=[[9, 1], [9, 1]])
    out = plain.replace_groups([1], hinted)
    assert out.group.tolist() == [0, 0, 1, 1]
    assert out.behavior_prompt_ids == [None, None, [9, 1], [9, 1]]
    assert out.take([1, 2]).behavior_prompt_ids == [None, [9, 1]]
    assert Rollouts.concat([plain, plain]).behavior_prompt_ids is None
    with pytest.raises(ValueError, match="behavior_prompt_ids has 1 entries for 2 rollouts"):
        batch([0, 1], behavior=[[9]])
