"""The original's second tutorial ("02_ml") as a script: a small machine-learning pipeline
(scikit-learn's digits), a parameter added later with NewArgDefault, frames of the results.
Models are stored pickled (an in-memory storage loads its own pickles). `--json FILE` writes
the tables (tables.py) instead of printing them."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import Tables  # noqa: E402

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from mandala.imports import *  # noqa: E402,F403

tables = Tables()


@op  # noqa: F405
def generate_dataset(random_seed=42):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=random_seed)
    return X_train, X_test, y_train, y_test


@op  # noqa: F405
def train_model(X_train, y_train):
    model = RandomForestClassifier(n_estimators=1, random_state=0)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


@op  # noqa: F405
def eval_model(model, X_test, y_test):
    return round(model.score(X_test, y_test), 2)


storage = Storage()  # noqa: F405
for _ in range(2):  # the second run loads what the first stored
    with storage:
        X_train, X_test, y_train, y_test = generate_dataset()
        model, train_acc = train_model(X_train, y_train)
        test_acc = eval_model(model, X_test, y_test)


@op  # noqa: F405
def train_model(X_train, y_train, n_estimators=NewArgDefault(1)):  # noqa: F405,F811
    model = RandomForestClassifier(n_estimators=n_estimators, random_state=0)
    model.fit(X_train, y_train)
    return model, round(model.score(X_train, y_train), 2)


with storage:
    X_train, X_test, y_train, y_test = generate_dataset()
    for n_estimators in [1, 10, 100]:
        model, train_acc = train_model(X_train, y_train, n_estimators=n_estimators)
        test_acc = eval_model(model, X_test, y_test)

cf = storage.cf(train_model)
cf.rename(vars={"var_1": "model", "var_0": "train_acc"}, inplace=True)
tables.add("train_model", cf.df())
cf = cf.expand_all()
tables.add("expanded", cf.df())
tables.add("eval_model", storage.cf(eval_model).expand_back(recursive=True).df())
tables.write()
