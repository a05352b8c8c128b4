"""The MLflow model the train stage logs (MLflow's "models from code"): raw review strings in,
positive-class probability out, through `src.lib.model_folder.ReviewClassifier`.

MLflow runs this file when it loads the model (`mlflow.pyfunc.load_model`, `mlflow models
serve`); `src/` travels with the model as its code, so no pickled object is ever loaded. The
type hints of `predict` are the model's signature: records `{"review": ...}` in (a DataFrame
with a `review` column too), records `{"positive_probability": ...}` out.
"""

import mlflow
import pydantic
from mlflow.pyfunc import PythonModel

from src.lib.model_folder import ReviewClassifier


class Review(pydantic.BaseModel):
    review: str


class Scored(pydantic.BaseModel):
    positive_probability: float


class ReviewModel(PythonModel):
    def load_context(self, context):
        self.classifier = ReviewClassifier.from_files(**context.artifacts)

    def predict(self, model_input: list[Review], params=None) -> list[Scored]:
        probabilities = self.classifier.predict_proba([row.review for row in model_input])
        return [Scored(positive_probability=float(p)) for p in probabilities]


mlflow.models.set_model(ReviewModel())
