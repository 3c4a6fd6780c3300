"""The original's ComputationFrame blog post ("01_cf") as a script: a composition, a pipeline
with a branch (scaled or not) that feeds back into one variable, two models per branch, and an
ensemble over an MList of models. `--json FILE` writes the tables (tables.py) instead of
printing them."""

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import Tables  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from mandala.imports import *  # noqa: E402,F403

tables = Tables()


@op(output_names=["y"])  # noqa: F405
def increment(x):
    return x + 1


@op(output_names=["w"])  # noqa: F405
def add(y, z):
    return y + z


with Storage() as storage:  # noqa: F405
    for x in range(5):
        y = increment(x)
        if x % 2 == 0:
            w = add(y=y, z=x)
tables.add("composition", storage.cf(increment).expand_forward().df())


@op(output_names=["X", "y"])  # noqa: F405
def get_data():
    return make_moons(n_samples=1000, noise=0.3, random_state=42)


@op(output_names=["X_train", "X_test", "y_train", "y_test"])  # noqa: F405
def get_train_test_split(X, y):
    return tuple(train_test_split(X, y, test_size=0.2, random_state=42))


@op(output_names=["X_scaled"])  # noqa: F405
def scale_data(X):
    return StandardScaler().fit_transform(X)


storage = Storage()  # noqa: F405
with storage:
    for scale in (True, False):
        X, y = get_data()
        if scale:
            X = scale_data(X=X)
        X_train, X_test, y_train, y_test = get_train_test_split(X=X, y=y)
cf = storage.cf(get_train_test_split).expand_back(recursive=True)
tables.add("branches", cf.df()[["get_data", "scale_data", "get_train_test_split"]])


@op(output_names=["svc_model"])  # noqa: F405
def train_svc(X_train, y_train, C: float = 1.0, kernel: str = "linear"):
    return SVC(C=C, kernel=kernel, random_state=0).fit(X_train, y_train)


@op(output_names=["rf_model"])  # noqa: F405
def train_random_forest(X_train, y_train, n_estimators: int = 5, max_depth: int = 5):
    return RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=0).fit(X_train, y_train)


@op(output_names=["accuracy"])  # noqa: F405
def eval_model(model, X_test, y_test):
    return accuracy_score(y_test, model.predict(X_test))


with storage:
    for scale in (True, False):
        X, y = get_data()
        if scale:
            X = scale_data(X=X)
        X_train, X_test, y_train, y_test = get_train_test_split(X=X, y=y)
        svc_model = train_svc(X_train=X_train, y_train=y_train)
        svc_acc = eval_model(model=svc_model, X_test=X_test, y_test=y_test)
        rf_model = train_random_forest(X_train=X_train, y_train=y_train)
        rf_acc = eval_model(model=rf_model, X_test=X_test, y_test=y_test)
cf = storage.cf(eval_model).expand_back(recursive=True)
tables.add("models", cf.df()[["accuracy", "scale_data", "train_svc", "train_random_forest"]])


@op(output_names=["accuracy"])  # noqa: F405
def eval_ensemble(models: MList[Any], X_test, y_test):  # noqa: F405
    y_preds = [model.predict(X_test) for model in models]
    return accuracy_score(y_test, np.mean(y_preds, axis=0) > 0.5)


with storage:
    for scale in (True, False):
        X, y = get_data()
        if scale:
            X = scale_data(X=X)
        X_train, X_test, y_train, y_test = get_train_test_split(X=X, y=y)
        svc_models = []
        for kernel in ("linear", "rbf", "poly"):
            svc_model = train_svc(X_train=X_train, y_train=y_train, kernel=kernel)
            svc_acc = eval_model(model=svc_model, X_test=X_test, y_test=y_test)
            svc_models.append(svc_model)
        ensemble_acc = eval_ensemble(models=svc_models, X_test=X_test, y_test=y_test)
cf = storage.cf(eval_ensemble).expand_back(recursive=True)
tables.add("ensemble", cf.df()[["scale_data", "kernel", "accuracy"]])
cf = (storage.cf(eval_ensemble) | storage.cf(eval_model)).expand_back(recursive=True)
tables.add("union", cf.df(include_calls=False)[["accuracy"]])
tables.write()
