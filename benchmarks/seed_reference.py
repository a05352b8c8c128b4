"""The lecture's Keras script (../shared/seed/lstm-basics-lecture12.md), as the speed reference.

Model, compile, fit and evaluate calls are the lecture's, unchanged. Only the data loading
differs: instead of `imdb.load_data` (a download) it takes the pipeline's token ids, so both
sides of benchmarks/train_speed.py see the same reviews, and a timing callback is passed to fit.
`x_train` is the pipeline's training split followed by its validation split: the lecture's
`validation_split=0.2` takes the last 20%, which is then exactly the pipeline's validation split.
"""

from tensorflow.keras.layers import LSTM, Dense, Embedding
from tensorflow.keras.models import Sequential
from tensorflow.keras.preprocessing import sequence

max_features = 10000  # top 10,000 words
maxlen = 200  # cut reviews to 200 words


def pad(token_ids):
    return sequence.pad_sequences(token_ids, maxlen=maxlen)


def build_model():
    model = Sequential()
    model.add(Embedding(max_features, 128))
    model.add(LSTM(128))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def fit(model, x_train, y_train, epochs=3, callbacks=None):
    return model.fit(x_train, y_train, epochs=epochs, batch_size=64, validation_split=0.2, callbacks=callbacks)


def evaluate(model, x_test, y_test):
    loss, acc = model.evaluate(x_test, y_test)
    return loss, acc
