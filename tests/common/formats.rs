//! `/metrics` in its three formats as a scraper sees them: asked for with Prometheus' own
//! `Accept` headers, OpenMetrics exemplars read off the bucket lines, and the protobuf format
//! decoded with messages of our own (the field numbers of Prometheus' `metrics.proto`, declared
//! here apart from the runtime's, so that the test does not read the output with the code that
//! wrote it).

use std::collections::BTreeMap;

/// What Prometheus 2.42 asks for: OpenMetrics first.
pub const ACCEPT_OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// What Prometheus 2.42 started with `--enable-feature=native-histograms` asks for: protobuf
/// first.
pub const ACCEPT_PROTOBUF: &str = "application/vnd.google.protobuf;\
    proto=io.prometheus.client.MetricFamily;encoding=delimited,\
    application/openmetrics-text;version=1.0.0;q=0.8,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A gzip body (`Content-Encoding: gzip`), inflated.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .expect("valid gzip");
    plain
}

/// The `Content-Type` of each format.
pub const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROTOBUF_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// `GET url` with `Accept: accept` (none if `None`): the `Content-Type` and the body.
pub async fn scrape_as(url: &str, accept: Option<&str>) -> (String, Vec<u8>) {
    let mut request = super::client().get(url);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("an ASCII Content-Type")
        .to_owned();
    let body = response.bytes().await.expect("a body").to_vec();
    (content_type, body)
}

/// The exemplar of one `_bucket` line of OpenMetrics text.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketExemplar {
    /// The bucket's labels, `le` included.
    pub labels: BTreeMap<String, String>,
    /// The exemplar's `trace_id`.
    pub trace_id: String,
    /// The observed value, in seconds.
    pub value: f64,
}

impl BucketExemplar {
    /// The bucket's upper bound.
    pub fn le(&self) -> f64 {
        let le = &self.labels["le"];
        if le == "+Inf" {
            return f64::INFINITY;
        }
        le.parse().expect("a numeric le")
    }
}

/// The upper bound of the `backend_ttfb_seconds` bucket that `seconds` falls in: where its
/// exemplar goes, whatever a busy machine added to the time.
pub fn ttfb_bucket(seconds: f64) -> f64 {
    perf_runtime::metrics::BACKEND_BUCKETS
        .into_iter()
        .find(|&le| seconds <= le)
        .unwrap_or(f64::INFINITY)
}

/// The exemplars of the `{family}_bucket` lines of OpenMetrics `text`, in order. Label values
/// must not contain `"` or `,` (the tests' own do not).
pub fn openmetrics_exemplars(text: &str, family: &str) -> Vec<BucketExemplar> {
    let prefix = format!("{family}_bucket{{");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (labels, after) = rest.split_once("} ")?;
            let (_count, exemplar) = after.split_once(" # ")?;
            let trace_id = exemplar
                .strip_prefix("{trace_id=\"")?
                .split_once("\"}")?
                .0
                .to_owned();
            let value = exemplar.split(' ').nth(1)?.parse().ok()?;
            Some(BucketExemplar {
                labels: labels
                    .split("\",")
                    .filter_map(|pair| pair.split_once("=\""))
                    .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                    .collect(),
                trace_id,
                value,
            })
        })
        .collect()
}

/// The families of a delimited protobuf exposition, in order; panics on a malformed one.
pub fn decode_families(mut bytes: &[u8]) -> Vec<proto::MetricFamily> {
    let mut families = Vec::new();
    while !bytes.is_empty() {
        let family = <proto::MetricFamily as prost::Message>::decode_length_delimited(&mut bytes)
            .expect("a length-delimited MetricFamily");
        families.push(family);
    }
    families
}

/// The messages of Prometheus' `io/prometheus/client/metrics.proto` that the tests read, with
/// its field numbers.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricFamily {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int32, tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
    }

    /// `MetricType.HISTOGRAM`.
    pub const HISTOGRAM: i32 = 4;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "3")]
        pub counter: Option<Counter>,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Counter {
        #[prost(double, tag = "1")]
        pub value: f64,
    }

    impl Metric {
        /// The value of label `name`.
        pub fn label(&self, name: &str) -> Option<&str> {
            self.label
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.value.as_str())
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub bucket: Vec<Bucket>,
        #[prost(sint32, tag = "5")]
        pub schema: i32,
        #[prost(double, tag = "6")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "7")]
        pub zero_count: u64,
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "13")]
        pub positive_delta: Vec<i64>,
    }

    impl Histogram {
        /// The native buckets: `(index, count)` of each, from the spans and the deltas; bucket
        /// `i` holds `(2^((i-1)/2^schema), 2^(i/2^schema)]`.
        pub fn native_buckets(&self) -> Vec<(i32, u64)> {
            let mut buckets = Vec::new();
            let (mut index, mut count, mut deltas) = (0i32, 0i64, self.positive_delta.iter());
            for span in &self.positive_span {
                index += span.offset;
                for _ in 0..span.length {
                    count += deltas.next().expect("a delta per bucket");
                    assert!(count >= 0, "a negative bucket count");
                    buckets.push((index, count as u64));
                    index += 1;
                }
            }
            assert!(deltas.next().is_none(), "as many deltas as buckets");
            buckets
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bucket {
        #[prost(uint64, tag = "1")]
        pub cumulative_count: u64,
        #[prost(double, tag = "2")]
        pub upper_bound: f64,
        #[prost(message, optional, tag = "3")]
        pub exemplar: Option<Exemplar>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(message, optional, tag = "3")]
        pub timestamp: Option<Timestamp>,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}
