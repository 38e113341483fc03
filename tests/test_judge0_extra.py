"""Judge0 Extra CE under /extra, driven by the official Judge0 Python SDK: its own language ids
(Python for ML is its default language), its own version; the root stays Judge0 CE. And the
python-ml language behind Extra CE's Python for ML."""

from __future__ import annotations

import base64

import httpx
import judge0
import pytest
from conftest import slow

ML_PROGRAM = """
import os
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

frame = pd.DataFrame({"x": np.arange(20.0)})
frame["y"] = 3 * frame["x"] + 2
model = LinearRegression().fit(frame[["x"]], frame["y"])
plt.plot(frame["x"], frame["y"])
plt.savefig("fit.png")
with open("fit.png", "rb") as png:
    magic = png.read(8)
print(f"slope {model.coef_[0]:.2f} intercept {model.intercept_:.2f} rows {len(frame)}")
print("png", magic == b"\\x89PNG\\r\\n\\x1a\\n", os.path.getsize("fit.png") > 1000)
"""


@pytest.fixture(scope="module")
def extra(server):
    return judge0.Client(server.url + "/extra")


def test_the_sdk_runs_its_default_language_on_extra(extra):
    assert extra.version == "1.13.1-extra"
    # No language given: the SDK's default, Python for ML, which it maps to Extra CE's id 10.
    result = judge0.run(
        client=extra,
        source_code="import sys; print('hello from', sys.version_info[0])",
        cpu_time_limit=min(15.0, slow(5.0)),
        wall_time_limit=min(20.0, slow(10.0)),
    )
    assert result.status == judge0.Status.ACCEPTED, (result.status, result.stderr)
    assert result.stdout == "hello from 3\n"
    shown = httpx.get(f"{extra.endpoint}/submissions/{result.token}?fields=language").json()
    assert shown["language"]["id"] == 10
    assert shown["language"]["name"].startswith("Python for ML (3.")


def test_the_sdk_maps_extra_aliases_to_extra_ids(extra):
    code = '#include <stdio.h>\nint main(void) { puts("clang on extra"); return 0; }'
    result = judge0.run(client=extra, source_code=code, language=judge0.C)
    assert result.status == judge0.Status.ACCEPTED and result.stdout == "clang on extra\n"
    shown = httpx.get(f"{extra.endpoint}/submissions/{result.token}?fields=language").json()
    assert shown["language"]["id"] == 1 and shown["language"]["name"].startswith("C (Clang ")


def test_about_and_languages_per_edition(server):
    assert httpx.get(server.url + "/about").json()["version"] == "1.13.1"
    assert httpx.get(server.url + "/extra/about").json()["version"] == "1.13.1-extra"
    ce = {x["id"]: x["name"] for x in httpx.get(server.url + "/languages").json()}
    extra = {x["id"]: x["name"] for x in httpx.get(server.url + "/extra/languages").json()}
    assert {1, 2, 4, 10, 89} <= set(extra) and 71 not in extra
    assert extra[10].startswith("Python for ML (3.") and extra[89] == "Multi-file program"
    assert 10 not in ce and 71 in ce
    # The same id is another language in each edition.
    assert httpx.get(server.url + "/extra/languages/4").json()["name"].startswith("Java")
    assert httpx.get(server.url + "/languages/4").status_code == 404


@pytest.mark.parametrize(
    "language_id,name",
    [(11, "Bosque (latest)"), (24, "F# (.NET Core SDK 3.1.406)"), (20, "Visual Basic.Net")],
)
def test_extra_ids_with_no_toolchain_are_refused_with_the_reason(server, language_id, name):
    response = httpx.post(
        server.url + "/extra/submissions", json={"language_id": language_id, "source_code": "x"}
    )
    assert response.status_code == 422, response.text
    (message,) = response.json()["language_id"]
    assert message.startswith(name) and " is not available: " in message
    archived = {x["id"]: x for x in httpx.get(server.url + "/extra/languages/all").json()}
    assert archived[language_id]["is_archived"] is True


def test_a_ce_only_id_does_not_exist_on_extra(server):
    response = httpx.post(
        server.url + "/extra/submissions", json={"language_id": 71, "source_code": "print(1)"}
    )
    assert response.status_code == 422
    assert response.json() == {"language_id": ["language with id 71 doesn't exist"]}


def test_python_ml_fits_a_model_and_gives_back_its_figure(client):
    # Importing pandas and scikit-learn from a cold disk takes seconds on a loaded host.
    limits = {"wall_time_ms": int(slow(20_000)), "cpu_time_ms": int(slow(10_000))}
    response = client.post(
        "/api/v1/execute",
        json={"language": "pyml", "code": ML_PROGRAM, "limits": limits, "outputs": ["*.png"]},
    )
    body = response.json()
    assert body["status"] == "ok", body
    assert body["language"] == "python-ml"
    assert body["run"]["stdout"] == "slope 3.00 intercept 2.00 rows 20\npng True True\n"
    assert body["run"]["stderr"] == ""
    (figure,) = body["run"]["outputs"]
    png = base64.b64decode(figure["content"])
    assert figure["name"] == "fit.png" and figure["size"] == len(png) > 1000
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_python_ml_is_debians_python_with_one_blas_thread(run):
    code = (
        "import os, sys, numpy\n"
        "print(sys.executable, os.environ['OPENBLAS_NUM_THREADS'], os.environ['MPLBACKEND'])\n"
        "print(round(numpy.linalg.det(numpy.eye(3) * 2), 6))\n"
    )
    body = run("python-for-ml", code, limits={"wall_time_ms": int(slow(15_000))})
    assert body["status"] == "ok", body
    assert body["run"]["stdout"] == "/usr/bin/python3 1 Agg\n8.0\n"
