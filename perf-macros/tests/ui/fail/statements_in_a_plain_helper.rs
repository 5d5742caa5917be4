// Statement attributes in a fn that carries no perf attribute: rustc refuses them before any
// macro runs. The fix is `#[perf_statements]` on the helper (tests/ui/pass/statements_in_helpers.rs).
use perf_runtime::perf_backend;

async fn complete(model: &str) -> Result<String, String> {
    Ok(model.to_owned())
}

async fn ask(model: &str) -> Result<String, String> {
    #[perf_backend(provider = "openrouter", model = model)]
    let answer = complete(model).await?;
    Ok(answer)
}

fn main() {
    let _ = ask;
}
