"""IMDB LSTM sentiment pipeline: libraries (src/lib), DVC stages (src/stages), commands (src/*.py)."""

from src.lib import hardware, quiet

# Both before anything imports TensorFlow, which reads them once at start-up.
quiet.install()  # its start-up lines are not the user's business
hardware.configure()  # oneDNN kernels on every CPU, GPU memory taken as needed (a user's setting stands)
