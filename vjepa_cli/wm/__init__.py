"""World models: simulators and episodes, frozen-encoder features, action-conditioned predictor training,
and model-predictive planning toward goal images (V-JEPA 2-AC, Assran et al. 2025).

Entry points: `collect.run_wm_collect`, `train.run_wm_train`, `eval.run_wm_eval`, `eval.run_wm_plan`.
"""
