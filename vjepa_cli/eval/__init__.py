"""Using a frozen model: feature extraction, future prediction and surprise, pictures, export, probes.

Modules (import from them; nothing heavy happens at package import):
- `extract`: `run_extract` - windowed features of many videos (`vjepa extract`);
- `predict`: `predict_future`, `surprise_curves`, `run_predict` - causal future prediction (`vjepa predict`);
- `surprise`: `run_surprise`, `score_pairs`, `read_pairs` - surprise curves and intuitive-physics scores;
- `metrics`: `physics_metrics`, `pairwise_accuracy`, `auroc`, `auprc`;
- `viz` / `viz_masks`: `run_viz` (PCA colours of patch features), `run_viz_masks` (a recipe's masks);
- `export`: `run_export` - a training checkpoint to a model file (ours or transformers');
- `windows`, `inputs`, `common`: windowed decoding, input/output planning, model/device helpers.
"""
