"""The ``[golden_goose]`` config section."""
from __future__ import annotations

from typing import Literal

from grpo_zoo.config import Section
from pydantic import Field, model_validator

DEFAULT_OPTIONS = 9
DEFAULT_FORMAT = {"options": DEFAULT_OPTIONS, "distractor_pick": "random", "answer_format": "tag"}


class GoldenGooseConfig(Section):
    # where the tasks come from (exactly one)
    dataset: str | None = Field(None, description="a folder written by `grpo-zoo goose synthesize` (or `goose filter`)")
    source: str | None = Field(
        None, description="synthesize when the run starts from this input: stdlib:code, stdlib:docstrings, a file or folder"
    )
    synth_dir: str | None = Field(None, description="where online synthesis writes (default: <run folder>/golden_goose)")
    # online synthesis
    domain: Literal["auto", "math", "code", "passage"] = "auto"
    generator: Literal["heuristic", "llm"] = "heuristic"
    generator_model: str | None = Field(None, description="transformers model of the llm generator")
    endpoint: str | None = Field(None, description="OpenAI-compatible URL of the llm generator")
    endpoint_model: str | None = None
    limit: int | None = Field(None, ge=1, description="sources to synthesize from (a seeded sample)")
    per_source: int = Field(1, ge=1, description="items per source")
    distractors: int = Field(10, ge=1, description="distractors generated per item (the paper: at least 10)")
    min_units: int | None = Field(None, ge=1, description="fewest lines/sentences in a masked span (heuristic)")
    max_units: int | None = Field(None, ge=1, description="most lines/sentences in a masked span (heuristic)")
    min_chars: int = Field(20, ge=1)
    max_chars: int = Field(300, ge=1)
    context_chars: int = Field(600, ge=0, description="context shown each side of [MASK]; 0 = the whole source")
    # task format
    # task format; None = as stored in `dataset`'s summary.json, else the value in brackets
    options: int | None = Field(None, ge=2, le=26, description="options per task (9): the true span + options-1 distractors")
    distractor_pick: Literal["random", "closest_length"] | None = Field(None, description="which distractors enter (random)")
    answer_format: Literal["tag", "plain"] | None = Field(None, description="tag (default): <answer>X</answer>; plain: 'Answer: X'")
    seed: int | None = Field(None, description="option order / distractor choice seed (the data set's, else the run seed)")
    max_tasks: int | None = Field(None, ge=1, description="train on at most this many tasks (a seeded sample)")
    # reward and difficulty filter
    reward: bool = Field(True, description="add the reward column goose/correct")
    filter_online: bool = Field(False, description="drop items whose last filter_k rollouts were all correct")
    filter_k: int = Field(16, ge=1)
    min_pool: int = Field(0, ge=0, description="never shrink the pool below this (0: train.prompts_per_step)")
    # distractor length bound (synthesis): an option much shorter or longer than the answer is a give-away
    min_length_ratio: float = Field(0.5, gt=0, le=1, description="shortest distractor / answer length allowed")
    max_length_ratio: float = Field(2.0, ge=1, description="longest distractor / answer length allowed")
    same_document_only: bool = Field(
        False, description="heuristic: never top up distractors from other documents (short documents are rejected)"
    )

    @model_validator(mode="after")
    def _check(self):
        if self.dataset and self.source:
            raise ValueError("golden_goose.dataset and golden_goose.source are both set; give one")
        options = self.options or DEFAULT_OPTIONS
        if self.distractors < options - 1:
            raise ValueError(
                f"golden_goose.distractors ({self.distractors}) must be >= golden_goose.options - 1 ({options - 1})"
            )
        if self.min_units and self.max_units and self.min_units > self.max_units:
            raise ValueError(f"golden_goose.min_units ({self.min_units}) > golden_goose.max_units ({self.max_units})")
        if self.min_chars > self.max_chars:
            raise ValueError(f"golden_goose.min_chars ({self.min_chars}) > golden_goose.max_chars ({self.max_chars})")
        if self.source and self.generator == "llm" and not (self.generator_model or self.endpoint):
            raise ValueError("golden_goose.generator = 'llm' needs golden_goose.generator_model or golden_goose.endpoint")
        return self
