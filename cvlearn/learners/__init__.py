"""CV learners with the scikit-learn estimator contract, and the torch modules they produce."""

from ._module import CollectiveVariable, LinearCV
from ._neural import AutoEncoder, DeepTICA, NeuralCV, TimeLaggedAutoEncoder
from ._pca import PCA
from ._tica import TICA
from ._training import TrainingError

__all__ = ["AutoEncoder", "CollectiveVariable", "DeepTICA", "LinearCV", "NeuralCV", "PCA", "TICA",
           "TimeLaggedAutoEncoder", "TrainingError"]
