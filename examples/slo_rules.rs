//! Prints the Prometheus rules of perf's SLO kit for a definition (`slo.toml`):
//!
//! ```sh
//! cargo run --example slo_rules -- slo.toml > prometheus-slo-rules.yml
//! ```

use perf::slo::SloDefinition;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "slo.toml".to_owned());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(2)
    });
    match SloDefinition::from_toml(&text) {
        Ok(definition) => print!("{}", definition.rules()),
        Err(error) => {
            eprintln!("{path}: {error}");
            std::process::exit(1)
        }
    }
}
