"""Recorded properties kept in the SDK's wire form (offline/program.py `_Properties`): they read as the dicts the
SDK's own decoding gives, the analyzer sends the wire form only while it cannot have been edited, and values whose
decoding depends on the run (secrets, resource references) are decoded at once."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from bench.generate import generated_cli_config
from offline import analyzer
from offline.program import RecordedResource, _recorded_form, run_program, run_stack


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def test_unread_records_keep_the_wire_form_and_read_as_the_sdk_decodes_it() -> None:
    resources = run_program(generated_cli_config(3), "scale")
    assert all(r.wire_inputs() is not None for r in resources), "nothing read the inputs yet"
    for record in resources:
        wire = record.wire_inputs()
        assert wire is not None
        assert record.inputs == rpc.deserialize_properties(wire, keep_unknowns=True)
        assert record.wire_inputs() is None, "once read as a dict it may change in place: the dict is the truth"
    app = next(r for r in resources if r.type == "netopt:index:AppNetwork")
    assert app.wire_outputs() is not None and set(app.outputs) == {"report", "endpoint", "config_sha256"}


def test_the_analyzer_sends_the_wire_form_only_while_unedited() -> None:
    wire_form: Any = _struct({"image": "nginx:1", "memory": 64})  # the monitor's form (the field is typed as what it reads as)
    record = RecordedResource("docker:index/container:Container", "c", "urn:c", "", True, wire_form)
    wire = record.wire_inputs()
    assert analyzer._inputs_struct(record) is wire
    record.inputs["image"] = "nginx:latest"  # reading gives the dict; an edit in place must reach the pack
    sent = analyzer._inputs_struct(record)
    assert sent is not wire and sent["image"] == "nginx:latest" and sent["memory"] == 64
    assert analyzer._outputs_struct(record, sent) is sent, "a custom resource's outputs are its inputs under the mocks"
    record.outputs = {"id": "x"}
    assert dict(analyzer._outputs_struct(record, sent)) == {"id": "x"}


def test_values_whose_decoding_depends_on_the_run_are_decoded_at_once() -> None:
    secret = _struct({"password": {rpc._special_sig_key: rpc._special_secret_sig, "value": "hunter2"}})
    assert isinstance(_recorded_form(secret), dict)
    plain = _struct({"a": [1, "b"]})
    assert _recorded_form(plain) is plain


def test_records_made_from_dicts_behave_as_before() -> None:
    record = RecordedResource("t", "n", "u", "", False)
    assert record.inputs == {} and record.outputs == {} and record.wire_inputs() is None
    assert record == RecordedResource("t", "n", "u", "", False, {}, outputs={})


def test_dependency_lists_are_the_same_from_run_to_run() -> None:
    """The SDK sends a resource's dependencies in the order of a set of resources hashed by address, which differs
    between runs; the recording (and so `make plan FORMAT=json` and the artifacts) lists them in one order."""
    def dependencies() -> list[tuple[list[str], dict[str, list[str]]]]:
        return [(r.dependencies, r.property_dependencies) for r in run_stack("staging")]

    runs = [dependencies() for _ in range(3)]
    assert any(deps for deps, _ in runs[0]) and any(props for _, props in runs[0])
    assert runs[0] == runs[1] == runs[2]
