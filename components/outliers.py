"""Outlier exposure: photos of products no one sells, made from each training batch.

A classifier trained only on the products it must know learns whatever tells *them*
apart (often a colour) and answers a product it never saw with confidence.  Each
training batch is therefore joined by half as many images made from it that are no
product at all (the left half of one product beside the right half of another; a
product with its colours turned; a product cut in quarters and reassembled), and the
model is taught to be unsure of them: its softmax should be uniform there (Hendrycks
et al., "Deep Anomaly Detection with Outlier Exposure", 2019).  A made image that may
still be a real product (two halves of the same product, a colourless product
recoloured) weighs nothing.
"""

from __future__ import annotations

from typing import Any

MIN_COLOURFULNESS = 0.15
"""Mean (max − min) channel spread at which turning an image's colours surely makes another product."""


def with_outliers(tf: Any, x: Any, y: Any, classes: int, weight: float) -> tuple[Any, Any, Any]:
    """The batch ``(x, sparse y)`` plus outliers: images, soft targets, sample weights."""
    n = tf.shape(x)[0]
    half = n // 2
    a, other = x[:half], tf.reverse(x, axis=[0])[:half]
    a_label, other_label = y[:half], tf.reverse(y, axis=[0])[:half]
    kinds = tf.math.floormod(tf.range(half), 3)
    made = tf.where(
        tf.reshape(kinds == 0, [-1, 1, 1, 1]),
        _halves(tf, a, other),
        tf.where(tf.reshape(kinds == 1, [-1, 1, 1, 1]), tf.gather(a, [2, 0, 1], axis=3), _quarters(tf, a)),
    )
    colourful = tf.clip_by_value(_colourfulness(tf, a) / MIN_COLOURFULNESS, 0.0, 1.0)
    surely_other = tf.where(
        kinds == 0,
        tf.cast(a_label != other_label, tf.float32),
        tf.where(kinds == 1, colourful, tf.ones([half])),
    )
    targets = tf.concat([tf.one_hot(y, classes), tf.fill([half, classes], 1.0 / classes)], axis=0)
    weights = tf.concat([tf.ones([n]), weight * surely_other], axis=0)
    return tf.concat([x, made], axis=0), targets, weights


def _halves(tf: Any, left: Any, right: Any) -> Any:
    middle = tf.shape(left)[2] // 2
    return tf.concat([left[:, :, :middle], right[:, :, middle:]], axis=2)


def _quarters(tf: Any, x: Any) -> Any:
    """Each quarter moved to the opposite corner."""
    return tf.roll(x, shift=[tf.shape(x)[1] // 2, tf.shape(x)[2] // 2], axis=[1, 2])


def _colourfulness(tf: Any, x: Any) -> Any:
    return tf.reduce_mean(tf.reduce_max(x, axis=3) - tf.reduce_min(x, axis=3), axis=[1, 2])
