//! Choosing the exposition format from the scraper's `Accept` header.

use super::{openmetrics, protobuf, CONTENT_TYPE};

/// A format `/metrics` can answer in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4: what any scraper understands.
    #[default]
    Text,
    /// OpenMetrics 1.0 text: exemplars on histogram buckets. Prometheus asks for it first.
    OpenMetrics,
    /// Prometheus' delimited protobuf format: native histograms as well as the classic ones, and
    /// exemplars. A Prometheus started with `--enable-feature=native-histograms` asks for it.
    Protobuf,
}

impl Format {
    /// The format an `Accept` header prefers among those perf writes: the highest `q`, the
    /// earliest on a tie; the text format when the header names none of them (or is absent).
    ///
    /// ```
    /// use perf_runtime::exposition::Format;
    ///
    /// // What Prometheus 2.42 sends, without and with native histograms.
    /// let plain = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::from_accept(Some(plain)), Format::OpenMetrics);
    /// let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5";
    /// assert_eq!(Format::from_accept(Some(native)), Format::Protobuf);
    /// assert_eq!(Format::from_accept(None), Format::Text);
    /// assert_eq!(Format::from_accept(Some("text/html")), Format::Text);
    /// ```
    pub fn from_accept(accept: Option<&str>) -> Format {
        let mut best: Option<(f32, Format)> = None;
        for range in accept.unwrap_or_default().split(',') {
            let Ok(media) = range.trim().parse::<mime::Mime>() else {
                continue;
            };
            let param = |name: &str| media.get_param(name).map(|v| v.as_str().to_owned());
            let q = param("q")
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let Some(format) = Self::of(&media, &param) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(best, _)| q > best) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }

    /// The format a media range names, if perf writes it.
    fn of(media: &mime::Mime, param: &dyn Fn(&str) -> Option<String>) -> Option<Format> {
        let version = param("version");
        let version_is = |allowed: &[&str]| version.as_deref().is_none_or(|v| allowed.contains(&v));
        match (media.type_().as_str(), media.subtype().as_str()) {
            ("application", "vnd.google.protobuf")
                if param("proto").as_deref() == Some("io.prometheus.client.MetricFamily")
                    && param("encoding").as_deref() == Some("delimited") =>
            {
                Some(Format::Protobuf)
            }
            ("application", "openmetrics-text") if version_is(&["1.0.0", "0.0.1"]) => {
                Some(Format::OpenMetrics)
            }
            ("text", "plain") if version_is(&["0.0.4"]) => Some(Format::Text),
            ("text", "*") | ("*", "*") => Some(Format::Text),
            _ => None,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE,
            Format::OpenMetrics => openmetrics::CONTENT_TYPE,
            Format::Protobuf => protobuf::CONTENT_TYPE,
        }
    }
}
