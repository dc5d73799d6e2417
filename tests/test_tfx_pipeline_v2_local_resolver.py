"""The resolver queries of the local Vertex driver (:mod:`tfx_pipeline.v2_local.resolver`), answered from its store."""
import pytest

import tfx_pipeline  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from tfx_pipeline.v2_local import Artifact, SpecError, Store, resolve_query

BLESSED = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'


@pytest.fixture
def store(tmp_path):
    store_ = Store(str(tmp_path / "metadata.json"))
    for blessed, created in ((1.0, 1.0), (0.0, 2.0), (1.0, 3.0), (True, 4.0), ("1", 5.0)):
        store_.add(Artifact(store_.new_name(), "title: tfx.ModelBlessing\n", "/b", {"blessed": blessed}, "E", "r",
                            created))
    store_.add(Artifact(store_.new_name(), "title: tfx.Model\n", "/m", {}, "Trainer", "r", 6.0))
    return store_


def names(artifacts):
    return [a.name.rsplit("/", 1)[1] for a in artifacts]


def test_newest_match_by_number_value(store):
    # the blessing of time 3; True (a bool) and "1" (a string) are no number_value 1
    assert names(resolve_query(BLESSED, {}, store, "resolver")) == ["3"]
    assert names(resolve_query('metadata.blessed.string_value="1"', {}, store, "resolver")) == ["5"]


def test_placeholder_from_an_input_artifact(store):
    model = Artifact("m", "title: tfx.ModelBlessing\n", "/b", {"current": "local/metadataStores/default/artifacts/6"},
                     "E", "r", 0.0)
    query = "name=\"{{$.inputs.artifacts['blessing'].metadata['current']}}\""
    assert names(resolve_query(query, {"blessing": [model]}, store, "resolver")) == ["6"]
    # an input that resolved to nothing: so does the query
    assert resolve_query(query, {"blessing": []}, store, "resolver") == []


def test_store_round_trip(store):
    store.save()
    again = Store(store.path)
    assert again.next_id == store.next_id and again.artifacts == store.artifacts
    assert names(resolve_query(BLESSED, {}, again, "resolver")) == ["3"]


def test_unsupported_clause_is_one_clear_error(store):
    with pytest.raises(SpecError, match=r"resolver: unsupported resolver filter clause 'uri=/b'"):
        resolve_query("state=LIVE AND uri=/b", {}, store, "resolver")
