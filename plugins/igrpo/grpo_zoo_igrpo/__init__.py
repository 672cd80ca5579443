"""iGRPO for grpo-zoo: two-stage self-feedback sampling (arXiv 2602.09000), plus a generative-judge reward.

Entry points: ``igrpo`` (:class:`grpo_zoo_igrpo.plugin.IGRPO`) and ``judge``
(:class:`grpo_zoo_igrpo.judge.Judge`).
"""
__version__ = "0.1.0"
