"""A frozen model applied to media: windowed features, future prediction and surprise, pictures."""
