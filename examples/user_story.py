"""The user story of elliptio, end to end, on the embedded default (no server).

Andy saves two annotation files with labels; Brenda finds them by metadata, reads
one with pandas, checks Andy's pandas version, trains a model and saves it; Andy
then finds, through lineage, who built on his data. Every step checks its result
and the script exits non-zero if one is not what the story expects.

Run:  python examples/user_story.py
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

import elliptio as eio

DATA = Path(__file__).resolve().parent / "data"


def check(condition: bool, what: str) -> None:
    """Stop loudly when a step of the story does not give the expected result."""
    if not condition:
        print(f"USER STORY FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)
    print(f"ok: {what}")


class DummyModel:
    def train(self, train_path: str) -> None:
        del train_path

    def save(self, url: str) -> None:
        Path(url).write_text("dummy_model")


def main() -> None:
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_colwidth", 48)
    pd.set_option("display.width", 250)
    h = eio.Handler()  # embedded default: local store + SQLite catalog, user data dir
    print(h)

    # --- Andy saves files ----------------------------------------------------
    with eio.mock_username("andy"):
        artifact = h.upload(
            local_paths=[DATA / "train.txt", DATA / "test.txt"],
            labels=eio.Labels(
                ticket="AB-123",
                project="awesome-project",
                datatype="annotation_file",
                infos={"stratification": "new special method"},
            ),
        )
    andy_id = artifact.metadata.artifact_id
    check(sorted(artifact.files) == ["test.txt", "train.txt"], f"Andy saved {andy_id}")

    # --- Brenda searches by metadata ------------------------------------------
    df = h.find(
        query={
            "username": "andy",
            "labels.datatype": "annotation_file",
            "creation_time": {"$gte": datetime.now(tz=UTC) - timedelta(days=7)},
            "file_relpaths": {"$regex": r"\.txt"},
        },
        max_docs=1,
    )
    print(df[["creation_time", "username", "file_relpaths", "labels.datatype"]])
    check(list(df.index) == [andy_id], "Brenda finds Andy's newest annotation files")

    # --- Brenda uses the files ------------------------------------------------
    artifact_id = df.index[0]
    artifact = h.get(artifact_id)
    print(artifact)
    test = pd.read_csv(artifact.files["test.txt"].remote_url)
    print(test)
    check(list(test.columns) == ["path", "class"] and len(test) == 2, "pandas reads test.txt")

    # --- Reproducibility --------------------------------------------------------
    andy_pandas = artifact.metadata.python_packages["pandas"]
    check(andy_pandas == pd.__version__, f"Andy used pandas {andy_pandas}")

    # --- Brenda trains and saves a model ----------------------------------------
    with eio.mock_username("brenda"):
        model = DummyModel()
        model.train(train_path=artifact.files["train.txt"].remote_url)
        with h.new(["model.pt"]) as new:
            model.save(new.file.remote_url)
    model_id = new.artifact.metadata.artifact_id
    check(h.based_on == [artifact_id], f"the run's inputs are {h.based_on}")
    check(new.artifact.metadata.based_on == [artifact_id], "the model is based on Andy's files")

    # --- Andy searches by lineage ---------------------------------------------
    users = h.find(query={"based_on": artifact_id})
    print(users[["ref", "creation_time", "username", "file_relpaths", "based_on"]])
    check(list(users.index) == [model_id], "Andy finds Brenda's model through lineage")
    check(users.loc[model_id, "username"] == "brenda", "the model is Brenda's")
    h.close()
    print("\nThe user story works.")


if __name__ == "__main__":
    main()
