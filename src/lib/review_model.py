"""The MLflow model the train stage logs (MLflow's "models from code"): raw review strings in,
positive-class probability out, through `src.lib.model_folder.ReviewClassifier`.

MLflow runs this file when it loads the model (`mlflow.pyfunc.load_model`, `mlflow models
serve`); `src/` travels with the model as its code, so no pickled object is ever loaded.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from src.lib.model_folder import ReviewClassifier

INPUT_COLUMN = "review"
OUTPUT_COLUMN = "positive_probability"


class ReviewModel(PythonModel):
    def load_context(self, context):
        self.classifier = ReviewClassifier.from_files(**context.artifacts)

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, pd.DataFrame):
            reviews = model_input[INPUT_COLUMN]
        else:  # a list of strings
            reviews = model_input
        reviews = ["" if review is None else str(review) for review in reviews]
        return pd.DataFrame({OUTPUT_COLUMN: self.classifier.predict_proba(reviews).astype("float64")})


mlflow.models.set_model(ReviewModel())
