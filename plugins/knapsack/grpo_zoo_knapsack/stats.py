"""Per-task success statistics, kept by task id across epochs."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Record:
    period: tuple  # ("epoch", e) or ("step", s): when ``period_*`` was counted
    period_success: float = 0.0
    period_count: int = 0
    last_success: float = 0.0  # the latest step that saw the task
    last_count: int = 0
    all_success: float = 0.0  # every step
    all_count: int = 0


@dataclass
class SuccessTable:
    rows: dict[str, Record] = field(default_factory=dict)

    def update(self, task_id: str, successes: float, count: int, period: tuple) -> None:
        """Add one step's rollouts of a task (already summed over its groups in that step)."""
        if count <= 0:
            return
        row = self.rows.get(task_id)
        if row is None:
            row = self.rows[task_id] = Record(period)
        if row.period != period:  # a new epoch: the previous one's figures are replaced
            row.period, row.period_success, row.period_count = period, 0.0, 0
        row.period_success += successes
        row.period_count += count
        row.last_success, row.last_count = successes, count
        row.all_success += successes
        row.all_count += count

    def estimate(self, task_id: str, mode: str = "last") -> float | None:
        row = self.rows.get(task_id)
        if row is None:
            return None
        s, c = {
            "epoch": (row.period_success, row.period_count),
            "last": (row.last_success, row.last_count),
            "all": (row.all_success, row.all_count),
        }[mode]
        return s / c if c else None

    def __len__(self) -> int:
        return len(self.rows)

    def state_dict(self) -> dict:
        return {
            "version": 1,
            "rows": {
                k: [list(r.period), r.period_success, r.period_count, r.last_success, r.last_count, r.all_success, r.all_count]
                for k, r in self.rows.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != 1:
            raise ValueError(f"unknown knapsack state version {state.get('version')!r}")
        self.rows = {
            k: Record(tuple(v[0]), float(v[1]), int(v[2]), float(v[3]), int(v[4]), float(v[5]), int(v[6]))
            for k, v in state["rows"].items()
        }
