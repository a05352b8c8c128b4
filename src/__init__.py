"""IMDB LSTM sentiment pipeline: libraries (src/lib), DVC stages (src/stages), commands (src/*.py)."""

from src.lib import quiet

quiet.install()  # before anything imports TensorFlow: its start-up lines are not the user's business
