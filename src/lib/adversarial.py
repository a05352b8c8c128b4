"""Adversarial and virtual adversarial training on the word embeddings (Miyato, Dai & Goodfellow
2017, "Adversarial Training Methods for Semi-Supervised Text Classification").

Both add a term to each step's loss and move the embedded words of a review by a `perturbation`:
a direction scaled to L2 norm epsilon per review, over all its words and embedding features, and
zero on padding.
  * at: the direction is the gradient of the loss with respect to the embedded review; the term
    is the loss on the labeled reviews moved along it.
  * vat: the direction is the one that changes the model's predictions most, found without labels
    by one power iteration (the gradient of the KL divergence between the predictions and those
    after a random move of size train.vat_xi); the term is that KL divergence after the move,
    over the labeled reviews and the unlabeled ones the batch carries after them.
The moves are added to the Embedding's output, before the LSTM's input dropout, and each pass
draws its own dropout mask, as the LSTM does in plain training (a mask drawn once per step with
the move added after it learned far slower: docs/results.md). The terms exist only while
training: the model trained is the plain classifier of src.lib.model, saved and served as any
other. Every op here runs on a GPU as on the CPU.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from src.lib.config import TrainConfig
from src.lib.model import classify_vectors

PROBABILITY_FLOOR = 1e-7  # Keras' epsilon: keeps the logarithms of the KL divergence finite


def perturbation(direction, mask, epsilon: float):
    """`direction` (reviews, words, features) zeroed on padding (`mask` False; None: no padding)
    and scaled to L2 norm `epsilon` per review. Scaled by its largest entry first, as Miyato et
    al.'s code does, so tiny gradients do not underflow."""
    if mask is not None:
        direction = direction * tf.cast(mask, direction.dtype)[:, :, None]
    largest = tf.reduce_max(tf.abs(direction), axis=(1, 2), keepdims=True) + 1e-12
    scaled = direction / largest
    norm = tf.sqrt(tf.reduce_sum(scaled**2, axis=(1, 2), keepdims=True) + 1e-6)
    return epsilon * scaled / norm


def binary_kl(p, q):
    """Mean KL divergence between Bernoulli predictions p (the reference) and q."""
    p = tf.clip_by_value(p, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    q = tf.clip_by_value(q, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    return tf.reduce_mean(p * tf.math.log(p / q) + (1 - p) * tf.math.log((1 - p) / (1 - q)))


def _sum(a, b):
    """Two gradients of one weight; an Embedding's come as rows (IndexedSlices), kept as rows."""
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


class AdversarialTrainer(keras.Model):
    """Trains `classifier` with train.adversarial's term added to its clean loss; predicts (and
    so validates) as the classifier does. Its weights are the classifier's, so early stopping's
    restored best weights are the classifier's too. With vat, a training batch's x holds its
    len(y) labeled reviews first, then unlabeled ones (src.lib.batches)."""

    def __init__(self, classifier: keras.Model, train: TrainConfig, **kwargs):
        super().__init__(name=f"{classifier.name}_adversarial", **kwargs)
        self.classifier = classifier
        self.method, self.epsilon, self.xi = train.adversarial, train.adversarial_epsilon, train.vat_xi
        self.noise_seed = keras.random.SeedGenerator(train.seed)  # vat's random probes, seeded
        self.adversarial_loss = keras.metrics.Mean(name="adversarial_loss")  # tracked by Keras as an attribute

    def call(self, tokens, training=False):
        return self.classifier(tokens, training=training)

    def train_step(self, data):
        tokens, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        labeled = tf.shape(y)[0]
        embedding = self.classifier.get_layer("embedding")
        mask = embedding.compute_mask(tokens)
        weights = self.trainable_weights

        def forward(moved):
            return classify_vectors(self.classifier, moved, mask, training=True)

        # One backward pass of the clean loss gives its gradients for the weights and, for at,
        # the direction of the move: the gradient with respect to the embedded words.
        with tf.GradientTape() as tape:
            vectors = embedding(tokens, training=True)
            y_all = forward(vectors)
            y_pred = y_all[:labeled]
            loss = self.compute_loss(x=tokens, y=y, y_pred=y_pred, training=True)
        *clean_gradients, to_vectors = tape.gradient(loss, [*weights, vectors])
        # The direction is a constant of the step, as in the paper: no gradient flows through it.
        if self.method == "at":
            direction = perturbation(to_vectors, mask, self.epsilon)
        else:
            direction = self._virtual_direction(forward, vectors, tf.stop_gradient(y_all), mask)
        with tf.GradientTape() as tape:
            y_moved = forward(embedding(tokens, training=True) + direction)
            if self.method == "at":
                adversarial = self.compute_loss(x=tokens, y=y, y_pred=y_moved, training=True)
            else:
                adversarial = binary_kl(tf.stop_gradient(y_all), y_moved)
        gradients = [_sum(a, b) for a, b in zip(clean_gradients, tape.gradient(adversarial, weights))]
        self.optimizer.apply_gradients(zip(gradients, weights))
        self._loss_tracker.update_state(loss, sample_weight=labeled)
        self.adversarial_loss.update_state(adversarial, sample_weight=labeled)
        return self.compute_metrics(tokens, y, y_pred)

    def test_step(self, data):
        # The adversarial term is a training loss: validation has none to report.
        logs = super().test_step(data)
        return {name: value for name, value in logs.items() if name != self.adversarial_loss.name}

    def _virtual_direction(self, forward, vectors, reference, mask):
        """The move of norm epsilon that changes the predictions most, by one power iteration."""
        probe = perturbation(keras.random.normal(tf.shape(vectors), seed=self.noise_seed), mask, self.xi)
        with tf.GradientTape() as tape:
            tape.watch(probe)
            divergence = binary_kl(reference, forward(vectors + probe))
        return perturbation(tape.gradient(divergence, probe), mask, self.epsilon)
