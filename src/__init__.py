"""IMDB LSTM sentiment pipeline: one module per DVC stage, plus config, tracking and model."""

import os

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) buries each stage's own
# output; warnings and errors still show. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
