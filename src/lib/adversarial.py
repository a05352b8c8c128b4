"""Adversarial training on the word embeddings (Miyato, Dai & Goodfellow 2017, "Adversarial
Training Methods for Semi-Supervised Text Classification").

Each step adds to the loss on a batch the loss on the same reviews with their embedded words
moved by `perturbation`: epsilon times the gradient of the loss with respect to the embedded
review, scaled to L2 norm epsilon per review over all its words and embedding features, and zero
on padding. The direction in which the model is most sensitive is where it is taught to be
stable. The terms exist only while training: the model trained is the plain classifier of
src.lib.model, saved and served as any other.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from src.lib.model import classify_vectors


def perturbation(gradient, mask, epsilon: float):
    """`gradient` (reviews, words, features) zeroed on padding (`mask` False; None: no padding)
    and scaled to L2 norm `epsilon` per review. Scaled by its largest entry first, as Miyato et
    al.'s code does, so tiny gradients do not underflow."""
    if mask is not None:
        gradient = gradient * tf.cast(mask, gradient.dtype)[:, :, None]
    largest = tf.reduce_max(tf.abs(gradient), axis=(1, 2), keepdims=True) + 1e-12
    scaled = gradient / largest
    norm = tf.sqrt(tf.reduce_sum(scaled ** 2, axis=(1, 2), keepdims=True) + 1e-6)
    return epsilon * scaled / norm


class AdversarialTrainer(keras.Model):
    """Trains `classifier` with the adversarial loss added to its clean loss; predicts (and so
    validates) as the classifier does. Its weights are the classifier's, so early stopping's
    restored best weights are the classifier's too."""

    def __init__(self, classifier: keras.Model, epsilon: float, **kwargs):
        super().__init__(name=f"{classifier.name}_adversarial", **kwargs)
        self.classifier = classifier
        self.epsilon = epsilon
        self.adversarial_loss = keras.metrics.Mean(name="adversarial_loss")  # tracked by Keras as an attribute

    def call(self, tokens, training=False):
        return self.classifier(tokens, training=training)

    def train_step(self, data):
        tokens, y = data
        embedding = self.classifier.get_layer("embedding")
        with tf.GradientTape() as tape:
            vectors = embedding(tokens, training=True)
            mask = embedding.compute_mask(tokens)
            with tf.GradientTape() as inner:
                inner.watch(vectors)
                y_pred = classify_vectors(self.classifier, vectors, mask, training=True)
                loss = self.compute_loss(x=tokens, y=y, y_pred=y_pred, training=True)
            with tape.stop_recording():  # the direction is a constant of the step, as in the paper
                direction = perturbation(inner.gradient(loss, vectors), mask, self.epsilon)
            y_adversarial = classify_vectors(self.classifier, vectors + direction, mask, training=True)
            adversarial = self.compute_loss(x=tokens, y=y, y_pred=y_adversarial, training=True)
            total = loss + adversarial
        weights = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(total, weights), weights))
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(tokens)[0])
        self.adversarial_loss.update_state(adversarial, sample_weight=tf.shape(tokens)[0])
        return self.compute_metrics(tokens, y, y_pred)
