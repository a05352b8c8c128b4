"""IMDB LSTM sentiment pipeline: one module per DVC stage, plus config, tracking and model."""
