//! The label budget of the metrics (`--model-label-cap`, `--allowed-models`): apart from the
//! rest of the configuration because it is fixed once per process, when the metrics are installed,
//! and [`install_metrics`](super::server::install_metrics) compares it between gateways.

use perf_runtime::metrics::DEFAULT_LABEL_CAP;
use perf_runtime::MetricsBuilder;

/// How many distinct values the `model` and `provider` labels may take: what
/// `--model-label-cap` and `--allowed-models` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSettings {
    /// Most distinct values of `model` and of `provider`.
    pub cap: usize,
    /// The only model names kept, sorted, if an allow-list was given.
    pub allowed_models: Option<Vec<String>>,
}

impl Default for LabelSettings {
    fn default() -> Self {
        LabelSettings {
            cap: DEFAULT_LABEL_CAP,
            allowed_models: None,
        }
    }
}

impl LabelSettings {
    /// The runtime's builder with these settings.
    pub fn builder(&self) -> MetricsBuilder {
        let builder = perf_runtime::Metrics::builder().label_cap(self.cap);
        match &self.allowed_models {
            Some(models) => builder.allowed_models(models),
            None => builder,
        }
    }
}

impl std::fmt::Display for LabelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--model-label-cap {}", self.cap)?;
        if let Some(models) = &self.allowed_models {
            write!(f, " --allowed-models {}", models.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::config::Config;
    use clap::Parser;

    #[test]
    fn label_settings_default_to_the_runtime_cap_and_no_allow_list() {
        let config = Config::parse_from(["gateway"]);
        assert_eq!(config.label_settings(), LabelSettings::default());
        assert_eq!(config.label_settings().cap, 500);
        assert!(config.metrics_listen.is_none() && config.metrics_token.is_none());
        let config = Config::parse_from([
            "gateway",
            "--model-label-cap",
            "7",
            "--allowed-models",
            "b, a,,b",
        ]);
        let settings = config.label_settings();
        assert_eq!(settings.cap, 7);
        assert_eq!(settings.allowed_models, Some(vec!["a".into(), "b".into()]));
        assert_eq!(
            settings.to_string(),
            "--model-label-cap 7 --allowed-models a,b"
        );
    }

    #[test]
    fn label_settings_build_bounded_metrics() {
        use perf_runtime::PerformanceTracker;
        let config = Config::parse_from(["gateway", "--allowed-models", "gpt-4o,claude"]);
        let registry = prometheus::Registry::new();
        let metrics = config.label_settings().builder().build(&registry).unwrap();
        for model in ["gpt-4o", "llama", "claude", "mistral"] {
            let tracker = PerformanceTracker::with_metrics(metrics, "/v1/chat/completions");
            tracker.backend_request("mock", model).first_byte();
        }
        let text = perf_runtime::exposition::render(metrics);
        for (model, count) in [("gpt-4o", 1), ("claude", 1), ("other", 2)] {
            let line = format!(
                "backend_ttfb_seconds_count{{endpoint=\"/v1/chat/completions\",model=\"{model}\",provider=\"mock\"}} {count}\n"
            );
            assert!(text.contains(&line), "{line}");
        }
        assert!(!text.contains("llama") && !text.contains("mistral"));
    }
}
