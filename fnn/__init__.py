"""fnn: neural networks as pure JAX functions with hand-written backpropagation."""
from fnn import activations
from fnn import initializers
from fnn import losses
from fnn import numerics
from fnn.activations import ACTIVATIONS
from fnn.activations import ActivationFn
from fnn.activations import get_activation
from fnn.grads import differentiable
from fnn.grads import differentiable_loss
from fnn.grads import grad
from fnn.grads import loss_value
from fnn.grads import make_value_and_grad
from fnn.grads import value_and_grad
from fnn.initializers import get_initializer
from fnn.layers import Activation
from fnn.layers import Dense
from fnn.layers import Dropout
from fnn.layers import Layer
from fnn.layers import mlp
from fnn.layers import serial
from fnn.losses import LOSSES
from fnn.losses import Loss
from fnn.losses import get_loss
from fnn.numerics import log_softmax
from fnn.numerics import logsumexp
from fnn.numerics import softmax

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ActivationFn",
    "Dense",
    "Dropout",
    "LOSSES",
    "Layer",
    "Loss",
    "activations",
    "differentiable",
    "differentiable_loss",
    "get_activation",
    "get_initializer",
    "get_loss",
    "grad",
    "initializers",
    "log_softmax",
    "logsumexp",
    "loss_value",
    "losses",
    "make_value_and_grad",
    "mlp",
    "numerics",
    "serial",
    "softmax",
    "value_and_grad",
]
