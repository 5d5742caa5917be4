"""An OTLP/HTTP metrics receiver for tests/gateway/otlp.rs, decoding with code nobody here wrote.

Usage: python3 otlp_receiver.py [--answer STATUS] [--times N] [--delay-ms MS] [--retry-after S]

It listens on an ephemeral port of 127.0.0.1 and prints the port alone on stdout's first line.

POST /v1/metrics (gzip or not): the body is decoded with the `opentelemetry-proto` package
(PyPI) and checked against the `opentelemetry-semantic-conventions` package (PyPI): every
`gen_ai.*` metric name is one of its GenAI metric constants, with the unit and the instrument
kind that the package's `create_*` function gives it; every other name is
`http.server.request.duration` (the same, from its HTTP metrics) or starts with `perf.`; units
are `s` for durations or a UCUM annotation (`{token}`); histograms add up (an exponential one's
zero bucket plus its positive buckets make its count, its scale is within OTLP's -10..20; an
explicit one has one bucket more than bounds); attribute keys are the package's (`gen_ai.*`,
`http.*`, `error.*`) or `perf.*`, a `gen_ai.operation.name` one of its values; exemplars carry
16-byte trace ids. What fails a check is listed in the summary's `errors`.

With `--answer STATUS` the first N requests (`--times N`, all without it) are answered STATUS
(`Retry-After: S` with `--retry-after`) without being decoded: a collector that refuses or is
overloaded. `--delay-ms MS` answers every request MS late: a slow collector.

GET /summary: JSON of everything it got, for the test to compare with `/metrics`: `requests`
(each POST: its arrival in seconds since the receiver started, its `content-encoding`, the
status answered), `exports` (the decoded requests, oldest first: resource attributes, and per
metric its name, unit, type and points with attributes, counts, sums, scale, offset, bucket
counts, exemplars with their trace ids in hex) and `errors`.
"""

import argparse
import gzip
import json
import math
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.semconv._incubating.attributes import error_attributes as error_incubating
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv._incubating.attributes import http_attributes as http_incubating
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes, http_attributes
from opentelemetry.semconv.metrics import http_metrics


class _Meter:
    """A stand-in for an OpenTelemetry Meter: what a `create_*` function of the semantic
    conventions asks it for (instrument kind, name, unit)."""

    def __init__(self):
        self.made = None

    def _make(self, kind):
        def make(name, callbacks=None, unit="", description="", **_):
            self.made = (name, kind, unit)

        return make

    def __getattr__(self, attribute):
        if attribute.startswith("create_"):
            return self._make(attribute[len("create_"):])
        raise AttributeError(attribute)


def _conventions(module):
    """{metric name: (instrument kind, unit)} of a semantic-conventions metrics module, from its
    constants and their `create_*` functions."""
    known = {}
    for constant in dir(module):
        if not constant.isupper():
            continue
        name = getattr(module, constant)
        if not isinstance(name, str):
            continue
        create = getattr(module, "create_" + constant.lower(), None)
        meter = _Meter()
        if create is not None:
            create(meter)
        known[name] = (meter.made[1], meter.made[2]) if meter.made else (None, None)
    return known


GEN_AI_METRICS = _conventions(gen_ai_metrics)
HTTP_METRICS = {
    name: spec
    for name, spec in _conventions(http_metrics).items()
    if name == "http.server.request.duration"
}


def _constants(*modules):
    return {
        getattr(m, c)
        for m in modules
        for c in dir(m)
        if c.isupper() and isinstance(getattr(m, c), str)
    }


ATTRIBUTE_KEYS = _constants(
    gen_ai_attributes, http_attributes, http_incubating, error_attributes, error_incubating
)
OPERATION_NAMES = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}
# An OTLP histogram instrument may be sent as explicit or exponential buckets.
SHAPES = {
    "histogram": {"histogram", "exponential_histogram"},
    "counter": {"sum"},
    "up_down_counter": {"sum"},
    "gauge": {"gauge"},
    "observable_gauge": {"gauge"},
}
UNIT = re.compile(r"^(s|ms|By|1|%|\{[a-z_]+\})$")


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.started = time.monotonic()
        self.requests = []
        self.exports = []
        self.errors = []
        self.refused = 0


def _attributes(key_values):
    out = {}
    for kv in key_values:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def _exemplars(point):
    return [
        {
            "trace_id": e.trace_id.hex(),
            "span_id": e.span_id.hex(),
            "time_unix_nano": e.time_unix_nano,
            "value": e.as_double if e.HasField("as_double") else e.as_int,
        }
        for e in point.exemplars
    ]


def _check_exemplars(where, point, errors):
    for e in point.exemplars:
        if len(e.trace_id) != 16 or not any(e.trace_id):
            errors.append(f"{where}: an exemplar's trace id is {e.trace_id.hex()!r}")
        if e.span_id and len(e.span_id) != 8:
            errors.append(f"{where}: an exemplar's span id is {e.span_id.hex()!r}")
        if e.time_unix_nano == 0:
            errors.append(f"{where}: an exemplar has no time")


def _check_attributes(where, attributes, errors):
    for key, value in attributes.items():
        if not key.startswith("perf.") and key not in ATTRIBUTE_KEYS:
            errors.append(f"{where}: attribute {key!r} is neither a semantic convention nor perf.*")
        if key == "gen_ai.operation.name" and value not in OPERATION_NAMES:
            errors.append(f"{where}: gen_ai.operation.name {value!r} is not one of {OPERATION_NAMES}")


def _point(kind, point, where, errors):
    attributes = _attributes(point.attributes)
    _check_attributes(where, attributes, errors)
    out = {
        "attributes": attributes,
        "start_time_unix_nano": point.start_time_unix_nano,
        "time_unix_nano": point.time_unix_nano,
    }
    if point.time_unix_nano == 0:
        errors.append(f"{where}: a point without a time")
    if kind in ("sum", "gauge"):
        which = point.WhichOneof("value")
        out["value"] = getattr(point, which) if which else None
        return out
    out.update(count=point.count, sum=point.sum, exemplars=_exemplars(point))
    _check_exemplars(where, point, errors)
    if point.start_time_unix_nano > point.time_unix_nano:
        errors.append(f"{where}: starts after its time")
    if kind == "histogram":
        bounds, counts = list(point.explicit_bounds), list(point.bucket_counts)
        out.update(explicit_bounds=bounds, bucket_counts=counts)
        if len(counts) != len(bounds) + 1:
            errors.append(f"{where}: {len(counts)} buckets for {len(bounds)} bounds")
        if bounds != sorted(set(bounds)):
            errors.append(f"{where}: bounds not increasing: {bounds}")
        if sum(counts) != point.count:
            errors.append(f"{where}: buckets add up to {sum(counts)}, count {point.count}")
    else:
        positive = list(point.positive.bucket_counts)
        out.update(
            scale=point.scale,
            zero_count=point.zero_count,
            zero_threshold=point.zero_threshold,
            offset=point.positive.offset,
            bucket_counts=positive,
            negative=list(point.negative.bucket_counts),
        )
        if not -10 <= point.scale <= 20:
            errors.append(f"{where}: scale {point.scale} outside -10..20")
        total = sum(positive) + sum(point.negative.bucket_counts) + point.zero_count
        if total != point.count:
            errors.append(
                f"{where}: zero {point.zero_count} + buckets {sum(positive)} != count {point.count}"
            )
        if point.zero_threshold < 0 or math.isnan(point.zero_threshold):
            errors.append(f"{where}: zero threshold {point.zero_threshold}")
    return out


def _metric(metric, errors):
    name, unit = metric.name, metric.unit
    kind = metric.WhichOneof("data")
    where = name
    if kind is None:
        errors.append(f"{name}: no data")
        return {"name": name, "unit": unit, "type": None, "points": []}
    if name.startswith("gen_ai."):
        spec = GEN_AI_METRICS.get(name)
        if spec is None:
            errors.append(f"{name}: not a GenAI metric of the semantic conventions ({sorted(GEN_AI_METRICS)})")
    elif name in HTTP_METRICS:
        spec = HTTP_METRICS[name]
    elif name.startswith("perf."):
        spec = None
    else:
        spec = None
        errors.append(f"{name}: neither a semantic-conventions name nor perf.*")
    if spec is not None:
        instrument, expected_unit = spec
        if expected_unit is not None and unit != expected_unit:
            errors.append(f"{name}: unit {unit!r}, the conventions say {expected_unit!r}")
        if instrument is not None and kind not in SHAPES.get(instrument, {instrument}):
            errors.append(f"{name}: sent as {kind}, the conventions make it a {instrument}")
    if not UNIT.match(unit):
        errors.append(f"{name}: unit {unit!r} is not UCUM nor an annotation")
    if (name.endswith(".duration") or "time_" in name) and unit != "s":
        errors.append(f"{name}: a duration in {unit!r}, not 's'")
    if "token" in name and kind == "sum" and unit != "{token}":
        errors.append(f"{name}: tokens in {unit!r}")
    data = getattr(metric, kind)
    out = {"name": name, "unit": unit, "type": kind, "points": []}
    if kind != "gauge":
        out["temporality"] = data.aggregation_temporality
        if data.aggregation_temporality == 0:
            errors.append(f"{name}: no aggregation temporality")
    if kind == "sum":
        out["monotonic"] = data.is_monotonic
    for point in data.data_points:
        out["points"].append(_point(kind, point, where, errors))
    if kind == "sum" and data.is_monotonic:
        for p in out["points"]:
            if p["value"] is not None and p["value"] < 0:
                errors.append(f"{name}: a monotonic sum is {p['value']}")
    return out


def decode(body, errors):
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    request.ParseFromString(body)
    export = {"resources": []}
    for resource_metrics in request.resource_metrics:
        resource = {
            "attributes": _attributes(resource_metrics.resource.attributes),
            "scopes": [],
        }
        for scope_metrics in resource_metrics.scope_metrics:
            metrics = [_metric(m, errors) for m in scope_metrics.metrics]
            names = [m["name"] for m in metrics]
            if len(names) != len(set(names)):
                errors.append(f"a metric sent twice in one scope: {names}")
            resource["scopes"].append({"name": scope_metrics.scope.name, "metrics": metrics})
        export["resources"].append(resource)
    return export


class Handler(BaseHTTPRequestHandler):
    state = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def _answer(self, status, body=b"", content_type="application/x-protobuf", headers=()):
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # A client that gave up waiting (the slow collector's): nothing to answer.
            self.close_connection = True

    def do_GET(self):
        state = self.state
        if self.path != "/summary":
            return self._answer(404)
        with state.lock:
            body = json.dumps(
                {"requests": state.requests, "exports": state.exports, "errors": state.errors}
            ).encode()
        self._answer(200, body, "application/json")

    def do_POST(self):
        state = self.state
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        encoding = self.headers.get("content-encoding")
        arrived = time.monotonic() - state.started
        args = state.args
        if args.delay_ms:
            time.sleep(args.delay_ms / 1000)
        with state.lock:
            refuse = args.answer is not None and (args.times is None or state.refused < args.times)
            if refuse:
                state.refused += 1
            status = args.answer if refuse else 200
            state.requests.append(
                {"at": arrived, "path": self.path, "encoding": encoding, "status": status,
                 "content_type": self.headers.get("content-type")}
            )
        if refuse:
            headers = [("retry-after", str(args.retry_after))] if args.retry_after is not None else []
            return self._answer(status, headers=headers)
        if self.path != "/v1/metrics":
            with state.lock:
                state.errors.append(f"POST to {self.path}, not /v1/metrics")
            return self._answer(404)
        errors = []
        if self.headers.get("content-type") != "application/x-protobuf":
            errors.append(f"content-type {self.headers.get('content-type')!r}")
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding not in (None, "identity"):
                errors.append(f"content-encoding {encoding!r}")
            export = decode(body, errors)
        except Exception as e:  # noqa: BLE001 - any failure to decode is the finding
            export = None
            errors.append(f"undecodable request: {e!r}")
        with state.lock:
            if export is not None:
                export["at"] = arrived
                state.exports.append(export)
            state.errors.extend(errors)
        answer = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        self._answer(200 if export is not None else 400, answer)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--answer", type=int)
    parser.add_argument("--times", type=int)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--retry-after", type=int)
    args = parser.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
