"""V-JEPA pretraining: EMA target encoder, schedules, loss, and the training loop (`run_pretrain`)."""
