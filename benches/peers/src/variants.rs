//! The nine variants: the same handler in the same one-route `axum::Router`, each instrumented
//! as its crate's README says, all set up once in one process.
//!
//! Every peer here installs something global (perf's metrics, the `metrics` recorder,
//! autometrics' exporter, OpenTelemetry's meter provider): they are set up together, before the
//! first request, and the variants then take turns. axum-prometheus' `pair()` installs the
//! process' one `metrics` recorder (metrics-exporter-prometheus), which variant 7's hand-written
//! `counter!`/`histogram!` record into too; their series do not overlap.

use std::time::Duration;

use axum::routing::post;
use axum::Router;
use axum_prometheus::PrometheusMetricLayer;
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use perf_runtime::PerfLayer;
use tower::layer::util::Identity;

use crate::handlers::{self, ROUTE};

/// One of the builds of the handler, in the table's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// 1: no instrumentation
    None,
    /// 2: `PerfLayer` alone
    PerfLayer,
    /// 3: `PerfLayer` and perf's attributes on the handler's functions
    PerfAttributes,
    /// 4: axum-prometheus' layer
    AxumPrometheus,
    /// 5: `#[autometrics]` on the handler's functions
    Autometrics,
    /// 6: OpenTelemetry's tower middleware
    OtelTower,
    /// 7: `metrics` macros by hand, a counter and a histogram per request
    MetricsByHand,
    /// 8: `tower::layer::util::Identity`, a layer that does nothing: what axum's router charges
    /// for any layer (it boxes the route's response body again)
    IdentityLayer,
    /// 9: perf's floor, the clock readings and histogram observations of 3 alone, no layer
    PerfFloor,
}

impl Variant {
    pub const ALL: [Variant; 9] = [
        Variant::None,
        Variant::PerfLayer,
        Variant::PerfAttributes,
        Variant::AxumPrometheus,
        Variant::Autometrics,
        Variant::OtelTower,
        Variant::MetricsByHand,
        Variant::IdentityLayer,
        Variant::PerfFloor,
    ];

    /// The table's name: its number first (what `--requests` takes).
    pub fn id(self) -> &'static str {
        match self {
            Variant::None => "1_none",
            Variant::PerfLayer => "2_perf_layer",
            Variant::PerfAttributes => "3_perf_layer_attributes",
            Variant::AxumPrometheus => "4_axum_prometheus",
            Variant::Autometrics => "5_autometrics",
            Variant::OtelTower => "6_otel_tower",
            Variant::MetricsByHand => "7_metrics_by_hand",
            Variant::IdentityLayer => "8_identity_layer",
            Variant::PerfFloor => "9_perf_floor",
        }
    }

    /// The variant whose id starts with `prefix` (`3`, `3_perf`, `autometrics` does not).
    pub fn find(prefix: &str) -> Option<Variant> {
        Variant::ALL
            .into_iter()
            .find(|v| v.id().starts_with(prefix))
    }

    /// Whether the variant is a tower layer (the "cheapest peer layer" of the goal).
    pub fn is_peer_layer(self) -> bool {
        matches!(self, Variant::AxumPrometheus | Variant::OtelTower)
    }
}

/// Every variant's router, and the handles of the peers' exporters.
pub struct Peers {
    routers: [Router; 9],
    /// metrics-exporter-prometheus' handle (variants 4 and 7): its upkeep and its rendering.
    pub prometheus: PrometheusHandle,
    /// OpenTelemetry's meter provider and the exporter its reader exports to (variant 6).
    pub otel: (SdkMeterProvider, InMemoryMetricExporter),
    /// axum-prometheus' upkeep task lives on it (spawned, never run: see [`Peers::after_batch`]).
    _runtime: tokio::runtime::Runtime,
}

impl Peers {
    /// Sets every variant up, as each README says, before any request.
    pub fn new() -> Peers {
        // perf: the metrics made at start-up (README, "Add perf to your gateway").
        perf_runtime::Metrics::init();
        // autometrics: its exporter initialised at start-up (README, "Example Axum App").
        autometrics::prometheus_exporter::init();
        // OpenTelemetry: the SDK's meter provider made global before the layer reads it (the
        // middleware's docs), exporting to memory once an hour: never while requests run.
        let exporter = InMemoryMetricExporter::default();
        let reader = PeriodicReader::builder(exporter.clone())
            .with_interval(Duration::from_secs(3600))
            .build();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        opentelemetry::global::set_meter_provider(provider.clone());
        // axum-prometheus: `pair()` spawns its upkeep task on the current tokio runtime.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
        let (axum_prometheus, prometheus) = {
            let _entered = runtime.enter();
            PrometheusMetricLayer::pair()
        };

        let otel_layer = opentelemetry_instrumentation_tower::http::server::Layer::new();
        // `with_state(())` makes each route's handler a service once, as `axum::serve` does.
        let routers = [
            Router::new()
                .route(ROUTE, post(handlers::chat))
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::chat))
                .layer(PerfLayer::new())
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::perf::chat))
                .layer(PerfLayer::new())
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::chat))
                .layer(axum_prometheus)
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::autometrics::chat))
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::chat))
                .layer(otel_layer)
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::by_hand::chat))
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::chat))
                .layer(Identity::new())
                .with_state(()),
            Router::new()
                .route(ROUTE, post(handlers::floor::chat))
                .with_state(()),
        ];
        Peers {
            routers,
            prometheus,
            otel: (provider, exporter),
            _runtime: runtime,
        }
    }

    /// The router of `variant`.
    pub fn router(&mut self, variant: Variant) -> &mut Router {
        &mut self.routers[variant as usize]
    }

    /// What the variant's exporter does off the request path, charged to its requests: the
    /// `metrics` recorder keeps each histogram sample in a queue that its upkeep (every 5 s, on
    /// axum-prometheus' task) or a scrape drains into buckets. Run at the end of each batch of
    /// variants 4 and 7, timed, it drains exactly that batch's samples (no other variant records
    /// into that recorder). perf, autometrics and OpenTelemetry count into their buckets as they
    /// record.
    pub fn after_batch(&self, variant: Variant) {
        if matches!(variant, Variant::AxumPrometheus | Variant::MetricsByHand) {
            self.prometheus.run_upkeep();
        }
    }
}
